/**
 * Issue 13, point 5: webhook URLs (server-side request forgery). https on public hosts only,
 * unless private networks are allowed; every address a name resolves to is checked.
 */
import type { LookupAddress } from 'node:dns';
import { describe, expect, it } from 'vitest';
import {
  checkWebhookUrl,
  guardedLookup,
  isNonGlobalAddress,
  type ResolveHost,
} from '../../src/webhooks/url-policy.js';

const PUBLIC_V4 = '93.184.215.14';
const PUBLIC_V6 = '2606:2800:21f:cb07:6820:80da:af6b:8b2c';

/** DNS as a table: names it does not know do not resolve. */
function dns(table: Record<string, string[]>): ResolveHost {
  return async (hostname) => {
    const addresses = table[hostname];
    if (addresses === undefined)
      throw Object.assign(new Error(`${hostname} not found`), { code: 'ENOTFOUND' });
    return addresses.map((address): LookupAddress => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
}

const refusal = async (url: string, resolveHost: ResolveHost = dns({})) => {
  try {
    await checkWebhookUrl(url, { allowPrivate: false, resolveHost });
  } catch (error) {
    return (error as { reason?: string }).reason;
  }
  return 'accepted';
};

describe('webhook URL policy', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.255.255.254', true],
    ['10.1.2.3', true],
    ['172.16.0.1', true],
    ['172.31.255.255', true],
    ['172.32.0.1', false],
    ['192.168.1.1', true],
    ['169.254.169.254', true],
    ['100.64.0.1', true],
    ['0.0.0.0', true],
    ['224.0.0.1', true],
    ['255.255.255.255', true],
    [PUBLIC_V4, false],
    ['8.8.8.8', false],
    ['::1', true],
    ['::', true],
    ['fe80::1', true],
    ['fd12:3456::1', true],
    ['fc00::1', true],
    ['ff02::1', true],
    ['::ffff:127.0.0.1', true],
    ['::ffff:8.8.8.8', true],
    ['64:ff9b::a00:1', true],
    ['2002:a00:1::1', true],
    [PUBLIC_V6, false],
    ['not an address', true],
  ])('%s is non-global: %s', (address, nonGlobal) => {
    expect(isNonGlobalAddress(address)).toBe(nonGlobal);
  });

  it('accepts https on a public host, normalized', async () => {
    const resolveHost = dns({ 'hooks.example.com': [PUBLIC_V4, PUBLIC_V6] });
    expect(
      await checkWebhookUrl('HTTPS://Hooks.Example.com:8443/behalf?x=1', {
        allowPrivate: false,
        resolveHost,
      }),
    ).toBe('https://hooks.example.com:8443/behalf?x=1');
    expect(await checkWebhookUrl(`https://${PUBLIC_V4}/hook`, { allowPrivate: false, resolveHost })).toBe(
      `https://${PUBLIC_V4}/hook`,
    );
  });

  it.each([
    ['http://hooks.example.com/', 'insecure_url'],
    ['ftp://hooks.example.com/', 'bad_url'],
    ['hooks.example.com/x', 'bad_url'],
    ['', 'bad_url'],
    [`https://hooks.example.com/${'a'.repeat(2100)}`, 'bad_url'],
    ['https://user:pass@hooks.example.com/', 'credentials_in_url'],
    ['https://hooks.example.com/#frag', 'bad_url'],
    ['https://127.0.0.1/', 'private_address'],
    ['https://2130706433/', 'private_address'],
    ['https://0x7f.1/', 'private_address'],
    ['https://[::1]/', 'private_address'],
    ['https://[::ffff:10.0.0.1]/', 'private_address'],
    ['https://169.254.169.254/latest/meta-data/', 'private_address'],
    ['https://10.0.0.8:8443/hook', 'private_address'],
    ['https://nowhere.example/', 'unresolvable_host'],
  ])('refuses %s (%s)', async (url, reason) => {
    expect(await refusal(url, dns({ 'hooks.example.com': [PUBLIC_V4] }))).toBe(reason);
  });

  it('refuses a name that resolves to a private address, even beside a public one', async () => {
    expect(
      await refusal('https://internal.example.com/', dns({ 'internal.example.com': ['10.0.0.5'] })),
    ).toBe('private_address');
    expect(
      await refusal('https://mixed.example.com/', dns({ 'mixed.example.com': [PUBLIC_V4, '127.0.0.1'] })),
    ).toBe('private_address');
    expect(await refusal('https://v6.example.com/', dns({ 'v6.example.com': [PUBLIC_V6, 'fd00::1'] }))).toBe(
      'private_address',
    );
  });

  it('with private networks allowed (local development), http and loopback pass, without looking names up', async () => {
    const policy = { allowPrivate: true, resolveHost: dns({}) };
    expect(await checkWebhookUrl('http://127.0.0.1:9999/hook', policy)).toBe('http://127.0.0.1:9999/hook');
    expect(await checkWebhookUrl('http://localhost:9999/hook', policy)).toBe('http://localhost:9999/hook');
    await expect(checkWebhookUrl('ftp://127.0.0.1/', policy)).rejects.toMatchObject({
      code: 'INVALID_REQUEST',
      reason: 'bad_url',
    });
  });

  describe("the connection's lookup (DNS rebinding)", () => {
    const lookup = (
      policy: Parameters<typeof guardedLookup>[0],
      hostname: string,
      options: { all?: boolean; family?: number } = {},
    ) =>
      new Promise<{ error: NodeJS.ErrnoException | null; address: unknown; family?: number | undefined }>(
        (resolve) => {
          guardedLookup(policy)(hostname, options as never, (error, address, family) =>
            resolve({ error, address, family }),
          );
        },
      );

    it('hands the connection a checked public address', async () => {
      const policy = {
        allowPrivate: false,
        resolveHost: dns({ 'hooks.example.com': [PUBLIC_V4, PUBLIC_V6] }),
      };
      expect(await lookup(policy, 'hooks.example.com')).toEqual({
        error: null,
        address: PUBLIC_V4,
        family: 4,
      });
      expect(await lookup(policy, 'hooks.example.com', { family: 6 })).toEqual({
        error: null,
        address: PUBLIC_V6,
        family: 6,
      });
      expect(await lookup(policy, 'hooks.example.com', { all: true })).toEqual({
        error: null,
        address: [
          { address: PUBLIC_V4, family: 4 },
          { address: PUBLIC_V6, family: 6 },
        ],
        family: undefined,
      });
    });

    it('refuses the connection when the name now resolves to a private address', async () => {
      const policy = { allowPrivate: false, resolveHost: dns({ 'hooks.example.com': ['127.0.0.1'] }) };
      const { error } = await lookup(policy, 'hooks.example.com');
      expect(error).toMatchObject({ code: 'INVALID_REQUEST', reason: 'private_address' });
    });

    it('passes resolution failures on', async () => {
      const { error } = await lookup({ allowPrivate: false, resolveHost: dns({}) }, 'gone.example.com');
      expect(error).toMatchObject({ code: 'ENOTFOUND' });
    });
  });
});
