import { isBehalfError } from '../../src/errors.js';
import { openStore, type Store } from '../../src/vault/index.js';

/**
 * behalf's Postgres store at `url`, if behalf has one yet; otherwise why not. The workloads
 * that need it report "not available" with this reason rather than a made-up figure.
 */
export async function openPostgresStore(url: string | undefined): Promise<{ store: Store } | { unavailable: string }> {
  if (url === undefined) {
    // Say the more useful of the two reasons: whether behalf could have used one at all.
    const probe = await openPostgresStore('postgres://127.0.0.1:1/behalf_bench_probe');
    if ('store' in probe) await probe.store.close();
    const built = 'store' in probe || !probe.unavailable.includes('no Postgres store yet');
    return { unavailable: built ? 'not available: BEHALF_DATABASE_URL does not name a Postgres database' : 'not available: no Postgres store yet' };
  }
  try {
    const store = await openStore(url);
    if (store.kind !== 'postgres') {
      await store.close();
      return { unavailable: 'not available: BEHALF_DATABASE_URL did not open a Postgres store' };
    }
    return { store };
  } catch (error) {
    if (isBehalfError(error) && error.code === 'CONFIG_INVALID' && /not built/i.test(error.message)) {
      return { unavailable: 'not available: no Postgres store yet' };
    }
    return { unavailable: `not available: the Postgres store did not open (${error instanceof Error ? error.message : String(error)})` };
  }
}
