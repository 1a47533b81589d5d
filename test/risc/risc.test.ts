import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../support/harness.js';

/** Issue 6: Cross-Account Protection, end to end: the emulator pushes signed events to behalf. */
describe('security events (RISC)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  const push = (event: string, body: Record<string, unknown>) =>
    h.control<{ delivered: boolean; receiver_status: number; jti: string }>('POST', '/emulator/risc/events', {
      receiver_url: `${h.url}/v1/google/risc`,
      event,
      ...body,
    });
  async function signedIn(): Promise<{ sub: string; refreshToken: string }> {
    const { sub, code } = await h.newUserWithCode();
    expect((await h.signIn(code)).status).toBe(201);
    const issued = await h.control<{ tokens: Array<{ type: string; value: string; sub: string }> }>(
      'GET',
      '/emulator/tokens',
    );
    return {
      sub,
      refreshToken: issued.tokens.filter((t) => t.sub === sub && t.type === 'refresh_token').at(-1)!.value,
    };
  }
  const user = async (sub: string) => (await (await h.service('GET', `/v1/users/${sub}`)).json()) as any;

  it('tokens-revoked: the grant is dropped and the user marked; token requests answer NEEDS_CONSENT', async () => {
    const { sub } = await signedIn();
    expect(await push('tokens-revoked', { sub })).toMatchObject({ delivered: true, receiver_status: 202 });
    const after = await user(sub);
    expect(after.grant).toMatchObject({ status: 'revoked', offline_access: false });
    expect(after.security).toMatchObject({ state: 'tokens_revoked' });
    expect((await h.service('POST', `/v1/users/${sub}/access-token`)).status).toBe(409);
  });

  it('sessions-revoked drops the grant', async () => {
    const { sub } = await signedIn();
    await push('sessions-revoked', { sub });
    expect((await user(sub)).security.state).toBe('sessions_revoked');
  });

  it('token-revoked names the refresh token by its double SHA-512, or by prefix', async () => {
    const a = await signedIn();
    const b = await signedIn();
    await push('token-revoked', { token: a.refreshToken, token_identifier_alg: 'hash_base64_sha512_sha512' });
    expect((await user(a.sub)).grant.status).toBe('revoked');
    expect((await user(b.sub)).grant.status).toBe('active');
    await push('token-revoked', { token: b.refreshToken, token_identifier_alg: 'prefix' });
    expect((await user(b.sub)).grant.status).toBe('revoked');
  });

  it('account-disabled stops all work for the user; account-enabled clears the mark', async () => {
    const { sub } = await signedIn();
    await push('account-disabled', { sub, reason: 'hijacking' });
    expect(await user(sub)).toMatchObject({
      grant: { status: 'revoked' },
      security: { state: 'account_disabled_hijacking' },
    });
    await expect(
      h.runtime.behalf.fetch(sub, `${h.emulator.url}/drive/v3/files?spaces=appDataFolder`),
    ).rejects.toMatchObject({ code: 'NEEDS_CONSENT' });
    await push('account-enabled', { sub });
    expect((await user(sub)).security).toBeNull();
  });

  it('account-credential-change-required marks the user and keeps the grant', async () => {
    const { sub } = await signedIn();
    await push('account-credential-change-required', { sub });
    expect(await user(sub)).toMatchObject({
      grant: { status: 'active' },
      security: { state: 'credential_change_required' },
    });
  });

  it('verification events are answered 202', async () => {
    expect(await push('verification', { state: 'hello' })).toMatchObject({ delivered: true });
  });

  it('a redelivered event (same jti) is acted on once', async () => {
    const { sub } = await signedIn();
    await push('account-credential-change-required', { sub, jti: 'dup-1' });
    await push('account-enabled', { sub });
    const again = await push('account-credential-change-required', { sub, jti: 'dup-1' });
    expect(again.receiver_status).toBe(202);
    expect((await user(sub)).security).toBeNull();
  });

  it('refuses forged or malformed tokens with 400 and a reason', async () => {
    const post = (body: string, type = 'application/secevent+jwt') =>
      fetch(`${h.url}/v1/google/risc`, { method: 'POST', headers: { 'content-type': type }, body });
    const { sub } = await signedIn();
    // An ID token is signed by Google too, but it is no security event token.
    const { id_token } = await h.control<{ id_token: string }>('POST', '/emulator/id-tokens', { sub });
    const idTokenAsSet = await post(id_token);
    expect(idTokenAsSet.status).toBe(400);
    expect(await idTokenAsSet.json()).toMatchObject({ error: 'SECURITY_EVENT_INVALID' });
    const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{}').toString('base64url')}.`;
    expect((await post(unsigned)).status).toBe(400);
    expect((await post('x'.repeat(20_000))).status).toBe(413);
    expect((await post('{"events":{}}', 'application/json')).status).toBe(415);
    // The user is untouched.
    expect((await user(sub)).grant.status).toBe('active');
  });
});
