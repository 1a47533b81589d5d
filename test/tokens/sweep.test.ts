import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sweepGrants } from '../../src/tokens/index.js';
import { startHarness, type Harness } from '../support/harness.js';

/** Issue 4: the token health sweep finds dead grants before a job needs them. */
describe('token health sweep', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  const sweep = (force = false) =>
    sweepGrants({
      vault: h.runtime.vault,
      tokens: h.runtime.tokens,
      clock: h.clock,
      clientId: h.runtime.behalf.clientId,
      force,
    });

  it('refreshes grants that are due and reports who must sign in again', async () => {
    const subs: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { sub, code } = await h.newUserWithCode();
      expect((await h.signIn(code)).status).toBe(201);
      subs.push(sub);
    }
    // Nothing is due yet: nothing is refreshed, nobody is reported.
    const quiet = await sweep();
    expect(quiet).toMatchObject({ checked: 3, refreshed: 0, healthy: 3, needsConsent: [], unavailable: [] });

    await h.control('POST', '/emulator/grants/revoke', { sub: subs[1] });
    // A forced sweep finds the revocation at once, while the access token still looks valid.
    const forced = await sweep(true);
    expect(forced.needsConsent).toEqual([subs[1]]);
    expect(forced.healthy).toBe(2);

    h.clock.advance(3600);
    const later = await sweep();
    expect(later).toMatchObject({ checked: 3, refreshed: 2, healthy: 2, needsConsent: [subs[1]] });
  });

  it('reports users it could not check when Google answers with an error', async () => {
    const { sub, code } = await h.newUserWithCode();
    expect((await h.signIn(code)).status).toBe(201);
    h.clock.advance(3600);
    await h.control('POST', '/emulator/faults', {
      path: '/token',
      status: 400,
      error: 'invalid_client',
      count: 20,
    });
    const report = await sweep();
    expect(report.unavailable).toContain(sub);
    await h.control('DELETE', '/emulator/faults');
  });

  it('reports its counts as it goes, and a stopped sweep checks no more than it had started (issue 13: the console shows progress)', async () => {
    for (let i = 0; i < 3; i++) await h.signedInUser();
    const base = {
      vault: h.runtime.vault,
      tokens: h.runtime.tokens,
      clock: h.clock,
      clientId: h.runtime.behalf.clientId,
      concurrency: 1,
    };
    const finished: number[] = [];
    const full = await sweepGrants({
      ...base,
      onProgress: (r) => finished.push(r.healthy + r.needsConsent.length + r.unavailable.length),
    });
    expect(full.checked).toBeGreaterThanOrEqual(3);
    // One call per grant checked, each with one more finished than the last.
    expect(finished).toEqual(Array.from({ length: full.checked }, (_, i) => i + 1));

    const controller = new AbortController();
    const stopped = await sweepGrants({
      ...base,
      signal: controller.signal,
      onProgress: () => controller.abort(),
    });
    expect(stopped.checked).toBeGreaterThanOrEqual(1);
    expect(stopped.checked).toBeLessThan(full.checked);
    expect(stopped.checked).toBe(stopped.healthy + stopped.needsConsent.length + stopped.unavailable.length);

    const never = new AbortController();
    never.abort();
    expect((await sweepGrants({ ...base, signal: never.signal })).checked).toBe(0);
  });
});
