/**
 * Which URLs behalf may POST webhooks to. A webhook URL is chosen by whoever holds a service API
 * key, and behalf sends to it from inside the deployment's network, so without a fence it could be
 * pointed at the cloud metadata service, the database or an admin port (server-side request
 * forgery, https://owasp.org/www-community/attacks/Server_Side_Request_Forgery).
 *
 * - Only https, unless private networks are allowed (local development): then http too.
 * - No host on a loopback, private, link-local, unique-local, shared (CGNAT), multicast or other
 *   non-global network, unless BEHALF_WEBHOOK_ALLOW_PRIVATE=true. IPv6 forms that embed an IPv4
 *   address (IPv4-mapped, NAT64, 6to4) are refused outright rather than unpacked: no public
 *   receiver needs them.
 * - Checked when an endpoint is added (the URL's host and every address it resolves to) and again
 *   at every delivery, on the address the connection is actually made to (the lookup inside the
 *   connection is the checked one), so a name that resolves elsewhere later (DNS rebinding) is
 *   still refused. Redirects are never followed (see ./dispatcher.ts).
 */
import { promises as dns, type LookupAddress } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { BehalfError } from '../errors.js';

/** Resolves a host name to every address it has (injected so tests need no DNS). */
export type ResolveHost = (hostname: string) => Promise<LookupAddress[]>;

export interface UrlPolicy {
  /** BEHALF_WEBHOOK_ALLOW_PRIVATE: http and non-global addresses allowed (local development). */
  allowPrivate: boolean;
  resolveHost?: ResolveHost;
}

const MAX_URL_LENGTH = 2048;

const systemResolve: ResolveHost = (hostname) => dns.lookup(hostname, { all: true, verbatim: true });

// IANA's special-purpose registries (https://www.iana.org/assignments/iana-ipv4-special-registry,
// https://www.iana.org/assignments/iana-ipv6-special-registry): everything that is not a globally
// reachable unicast address. Two lists: Node's BlockList matches IPv4 addresses against IPv6 rules
// as IPv4-mapped addresses, so the ::ffff:0:0/96 rule would otherwise refuse every IPv4 address.
const NON_GLOBAL_V4 = new BlockList();
const NON_GLOBAL_V6 = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8], // private (RFC 1918)
  ['100.64.0.0', 10], // shared address space, carrier-grade NAT (RFC 6598)
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local, cloud metadata services (RFC 3927)
  ['172.16.0.0', 12], // private (RFC 1918)
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.168.0.0', 16], // private (RFC 1918)
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const) {
  NON_GLOBAL_V4.addSubnet(network, prefix, 'ipv4');
}
for (const [network, prefix] of [
  ['::', 96], // unspecified, loopback, IPv4-compatible
  ['::ffff:0:0', 96], // IPv4-mapped
  ['64:ff9b::', 96], // NAT64 (RFC 6052)
  ['64:ff9b:1::', 48], // local-use NAT64 (RFC 8215)
  ['100::', 64], // discard
  ['2001:db8::', 32], // documentation
  ['2002::', 16], // 6to4
  ['fc00::', 7], // unique local (RFC 4193)
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
] as const) {
  NON_GLOBAL_V6.addSubnet(network, prefix, 'ipv6');
}

/** Whether an IP address is on a network webhooks may not reach without the private-network opt-in. */
export function isNonGlobalAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return true;
  return family === 4 ? NON_GLOBAL_V4.check(address, 'ipv4') : NON_GLOBAL_V6.check(address, 'ipv6');
}

/**
 * Check a webhook URL when it is added: well-formed, https (or http with the opt-in), no
 * credentials or fragment, and a host on a global network (every address it resolves to). The
 * normalized URL, or INVALID_REQUEST with a reason (`bad_url`, `insecure_url`, `credentials_in_url`,
 * `private_address`, `unresolvable_host`).
 */
export async function checkWebhookUrl(input: string, policy: UrlPolicy): Promise<string> {
  const url = parseWebhookUrl(input, policy);
  if (policy.allowPrivate) return url.href;
  const host = bareHost(url);
  if (isIP(host) !== 0) {
    refuseNonGlobal(host, [host]);
    return url.href;
  }
  let addresses: LookupAddress[];
  try {
    addresses = await (policy.resolveHost ?? systemResolve)(host);
  } catch {
    addresses = [];
  }
  if (addresses.length === 0) {
    throw new BehalfError('INVALID_REQUEST', `The webhook URL's host ${host} does not resolve.`, {
      reason: 'unresolvable_host',
    });
  }
  refuseNonGlobal(
    host,
    addresses.map((a) => a.address),
  );
  return url.href;
}

/** The URL's form alone (no DNS): what is checked again before every delivery, with {@link guardedLookup}. */
export function parseWebhookUrl(input: string, policy: Pick<UrlPolicy, 'allowPrivate'>): URL {
  const bad = (problem: string, reason = 'bad_url'): never => {
    throw new BehalfError('INVALID_REQUEST', problem, { reason });
  };
  if (input.length === 0 || input.length > MAX_URL_LENGTH)
    bad(`A webhook URL is 1 to ${MAX_URL_LENGTH} characters.`);
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    return bad('The webhook URL is not an absolute URL.');
  }
  if (url.protocol === 'http:') {
    if (!policy.allowPrivate)
      bad('A webhook URL must be https (http only with BEHALF_WEBHOOK_ALLOW_PRIVATE=true).', 'insecure_url');
  } else if (url.protocol !== 'https:') {
    bad('A webhook URL must be https.');
  }
  if (url.username !== '' || url.password !== '')
    bad('A webhook URL may not carry a user name or password.', 'credentials_in_url');
  if (url.hash !== '') bad('A webhook URL may not have a fragment (#…).');
  if (bareHost(url) === '') bad('The webhook URL has no host.');
  if (!policy.allowPrivate && isIP(bareHost(url)) !== 0) refuseNonGlobal(bareHost(url), [bareHost(url)]);
  return url;
}

/**
 * The DNS lookup for a delivery's connection (Node's `lookup` option, which undici passes to
 * net/tls.connect): resolves the host and refuses the connection when any of its addresses is
 * non-global, so the address connected to is always one that was checked.
 */
export function guardedLookup(policy: UrlPolicy): LookupFunction {
  const resolve = policy.resolveHost ?? systemResolve;
  return (hostname, options, callback) => {
    resolve(hostname)
      .then((addresses) => {
        if (!policy.allowPrivate)
          refuseNonGlobal(
            hostname,
            addresses.map((a) => a.address),
          );
        const usable = addresses.filter(
          (a) => options.family === undefined || options.family === 0 || a.family === options.family,
        );
        if (usable.length === 0)
          throw Object.assign(new Error(`${hostname} has no usable address`), { code: 'ENOTFOUND' });
        if (options.all === true) callback(null, usable);
        else callback(null, usable[0]!.address, usable[0]!.family);
      })
      .catch((error: unknown) => callback(error as NodeJS.ErrnoException, '', 0));
  };
}

/** The host without IPv6 brackets. */
function bareHost(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}

function refuseNonGlobal(host: string, addresses: readonly string[]): void {
  if (addresses.some(isNonGlobalAddress)) {
    throw new BehalfError(
      'INVALID_REQUEST',
      `The webhook URL's host ${host} is on a loopback, private or otherwise non-public network; webhooks go to public hosts only (BEHALF_WEBHOOK_ALLOW_PRIVATE=true allows others, for local development).`,
      { reason: 'private_address' },
    );
  }
}
