/**
 * One worker thread per core for the ID token workloads. Each worker builds every contender once
 * (with the same key material), then runs whichever contender the main thread names for a fixed
 * time and reports how many tokens it verified. Each contender awaits one verification at a time
 * per thread: the same concurrency for all of them, the thread count being the core count.
 */
import { verify as verifySignature, type KeyObject } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { OAuth2Client } from 'google-auth-library';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { systemClock } from '../../src/clock.js';
import { GoogleKeySet, IdTokenVerifier } from '../../src/idtoken/index.js';
import {
  GOOGLE_ISSUERS,
  mintIdTokens,
  publicKeyOf,
  type SigningKey,
  type TokenAudience,
} from '../lib/id-tokens.js';

/**
 * `limit`: what any verifier must do to a token (decode header and payload from base64url, parse
 * both, check the RS256 signature) and nothing more; `bare signature check`: the signature alone.
 */
export type Contender = 'behalf' | 'google-auth-library' | 'jose' | 'limit' | 'bare signature check';
export type TokenMode = 'distinct' | 'same';

export type WorkerRequest =
  | {
      type: 'mint';
      key: Pick<SigningKey, 'kid' | 'privateKeyPem'>;
      audience: TokenAudience;
      first: number;
      count: number;
    }
  | { type: 'setup'; key: SigningKey; audience: TokenAudience; tokens: string[]; offset: number }
  | { type: 'run'; contender: Contender; mode: TokenMode; durationMs: number };

export type WorkerReply =
  | { type: 'started' }
  | { type: 'minted'; tokens: string[] }
  | { type: 'ready' }
  | { type: 'ran'; ops: number; elapsedMs: number }
  | { type: 'failed'; error: string };

type VerifyOne = (token: string) => Promise<unknown> | unknown;

interface State {
  tokens: string[];
  /** Where this thread is in the token pool, per contender (distinct mode cycles through the pool). */
  position: Map<Contender, number>;
  verify: Map<Contender, Map<TokenMode, VerifyOne>>;
}

let state: State | undefined;

async function setup(request: Extract<WorkerRequest, { type: 'setup' }>): Promise<void> {
  const { key, audience, tokens } = request;
  const jwksResponse = JSON.stringify(key.jwks);
  const expected = tokens[0]!;

  // behalf: its key set fed through the injected fetch (no network), its verifier with the policy
  // createRuntime gives it. A separate verifier per mode, so one mode's cache cannot help the other.
  const behalfVerifier = () => {
    const keys = new GoogleKeySet({
      jwksUri: 'https://www.googleapis.com/oauth2/v3/certs',
      clock: systemClock,
      fetch: async () =>
        new Response(jwksResponse, {
          headers: { 'content-type': 'application/json', 'cache-control': 'public, max-age=21600' },
        }),
    });
    const verifier = new IdTokenVerifier({
      keys,
      clock: systemClock,
      policy: {
        audience: audience.audience,
        allowedAuthorizedParties: [audience.authorizedParty],
        issuers: GOOGLE_ISSUERS,
      },
    });
    return (token: string) => verifier.verify(token);
  };

  // google-auth-library: the PEM certificates Google serves at /oauth2/v1/certs, already fetched.
  const gal = new OAuth2Client({ clientId: audience.audience });
  const galVerify = (token: string) =>
    gal.verifySignedJwtWithCertsAsync(token, key.pemCerts, audience.audience, GOOGLE_ISSUERS);

  // jose: a local JWK set (keys imported once and cached by jose).
  const jwks = createLocalJWKSet(key.jwks as Parameters<typeof createLocalJWKSet>[0]);
  const joseVerify = (token: string) =>
    jwtVerify(token, jwks, { issuer: GOOGLE_ISSUERS, audience: audience.audience, algorithms: ['RS256'] });

  // The bare signature check: the RS256 check alone, key parsed once, nothing else.
  const publicKey: KeyObject = publicKeyOf(key.jwks.keys[0]!);
  const bareVerify = (token: string) => {
    const dot = token.lastIndexOf('.');
    if (
      !verifySignature(
        'RSA-SHA256',
        Buffer.from(token.slice(0, dot)),
        publicKey,
        Buffer.from(token.slice(dot + 1), 'base64url'),
      )
    ) {
      throw new Error('bad signature');
    }
  };
  // The limit: decode and parse the header and the payload, then the bare signature check. No
  // claim is checked and nothing is cached.
  const limitVerify = (token: string): unknown => {
    const first = token.indexOf('.');
    const dot = token.lastIndexOf('.');
    JSON.parse(Buffer.from(token.slice(0, first), 'base64url').toString());
    const claims: unknown = JSON.parse(Buffer.from(token.slice(first + 1, dot), 'base64url').toString());
    bareVerify(token);
    return claims;
  };

  const verify = new Map<Contender, Map<TokenMode, VerifyOne>>([
    [
      'behalf',
      new Map([
        ['distinct', behalfVerifier()],
        ['same', behalfVerifier()],
      ]),
    ],
    [
      'google-auth-library',
      new Map([
        ['distinct', galVerify],
        ['same', galVerify],
      ]),
    ],
    [
      'jose',
      new Map([
        ['distinct', joseVerify],
        ['same', joseVerify],
      ]),
    ],
    [
      'limit',
      new Map([
        ['distinct', limitVerify],
        ['same', limitVerify],
      ]),
    ],
    [
      'bare signature check',
      new Map([
        ['distinct', bareVerify],
        ['same', bareVerify],
      ]),
    ],
  ]);

  // Every contender must accept a good token and refuse a forged one, or its figure means nothing.
  const [h, p, s] = expected.split('.') as [string, string, string];
  const forged = `${h}.${p}.${s.slice(0, 10)}${s[10] === 'A' ? 'B' : 'A'}${s.slice(11)}`;
  const probe = behalfVerifier();
  const sanity: Array<[Contender, VerifyOne]> = [
    ['behalf', probe],
    ['google-auth-library', galVerify],
    ['jose', joseVerify],
    ['limit', limitVerify],
    ['bare signature check', bareVerify],
  ];
  for (const [name, check] of sanity) {
    await check(expected);
    let refused = false;
    try {
      await check(forged);
    } catch {
      refused = true;
    }
    if (!refused) throw new Error(`${name} accepted a forged signature: the benchmark setup is wrong`);
  }

  state = { tokens, position: new Map(), verify };
  for (const contender of verify.keys()) state.position.set(contender, request.offset);
}

async function run(
  request: Extract<WorkerRequest, { type: 'run' }>,
): Promise<{ ops: number; elapsedMs: number }> {
  if (state === undefined) throw new Error('run before setup');
  const verify = state.verify.get(request.contender)!.get(request.mode)!;
  const { tokens } = state;
  const sync = request.contender === 'limit' || request.contender === 'bare signature check';
  let index = request.mode === 'same' ? 0 : state.position.get(request.contender)!;
  const step = request.mode === 'same' ? 0 : 1;
  let ops = 0;
  const started = performance.now();
  const end = started + request.durationMs;
  for (;;) {
    // The limits are synchronous; awaiting them would charge them a microtask the others pay for their own reasons.
    if (sync) verify(tokens[index]!);
    else await verify(tokens[index]!);
    index += step;
    if (index === tokens.length) index = 0;
    ops++;
    if ((ops & 31) === 0 && performance.now() >= end) break;
  }
  const elapsedMs = performance.now() - started;
  if (request.mode === 'distinct') state.position.set(request.contender, index);
  return { ops, elapsedMs };
}

async function handle(request: WorkerRequest): Promise<WorkerReply> {
  switch (request.type) {
    case 'mint':
      return {
        type: 'minted',
        tokens: mintIdTokens(request.key, request.audience, request.first, request.count),
      };
    case 'setup':
      await setup(request);
      return { type: 'ready' };
    case 'run':
      return { type: 'ran', ...(await run(request)) };
  }
}

parentPort!.on('message', (request: WorkerRequest) => {
  handle(request).then(
    (reply) => parentPort!.postMessage(reply),
    (error: unknown) =>
      parentPort!.postMessage({
        type: 'failed',
        error: error instanceof Error ? (error.stack ?? error.message) : String(error),
      }),
  );
});
parentPort!.postMessage({ type: 'started' } satisfies WorkerReply);
