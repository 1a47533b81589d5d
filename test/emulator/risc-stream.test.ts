import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { JWTAccess } from 'google-auth-library';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt, startFixture, type EmulatorFixture } from './support.js';

const AUDIENCE = 'https://risc.googleapis.com/google.identity.risc.v1beta.RiscManagementService';
const PUSH = 'https://schemas.openid.net/secevent/risc/delivery-method/push';
const TOKENS_REVOKED = 'https://schemas.openid.net/secevent/oauth/event-type/tokens-revoked';
const VERIFICATION = 'https://schemas.openid.net/secevent/risc/event-type/verification';

/**
 * Issue 15, point 6: the RISC stream-management API as Google's guide describes it
 * (https://developers.google.com/identity/protocols/risc), and pushes only for requested events.
 */
describe('emulator: RISC stream management', () => {
  let f: EmulatorFixture;
  let receiver: Server;
  let receiverUrl: string;
  const received: string[] = [];
  let authorization: string;

  beforeAll(async () => {
    f = await startFixture();
    receiver = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        received.push(body);
        response.writeHead(202).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/risc`;
    const key = await f.control('GET', '/emulator/service-account');
    authorization = new JWTAccess(key.client_email, key.private_key, key.private_key_id)
      .getRequestHeaders(AUDIENCE)
      .get('authorization')!;
  });
  afterAll(async () => {
    await f.close();
    await new Promise((resolve) => receiver.close(resolve));
  });

  const call = async (method: string, path: string, body?: unknown, auth = authorization) => {
    const response = await fetch(`${f.emulator.url}/risc/v1beta/${path}`, {
      method,
      headers: { authorization: auth, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.status, body: (await response.json()) as any };
  };

  it('refuses calls without the self-signed JWT, and answers 404 before a registration', async () => {
    expect((await call('GET', 'stream', undefined, 'Bearer nope')).status).toBe(401);
    expect((await call('GET', 'stream', undefined, '')).body.error.message).toBe('Unauthorized.');
    const { body } = await call('GET', 'stream');
    expect(body.error).toMatchObject({ code: 404, message: 'Project has no RISC configuration.' });
  });

  it('validates stream:update as the guide says', async () => {
    expect(
      (await call('POST', 'stream:update', { delivery: { delivery_method: PUSH } })).body.error.message,
    ).toBe('Stream configuration must contain url field.');
    const insecure = await call('POST', 'stream:update', {
      delivery: { delivery_method: PUSH, url: 'http://receiver.example.com/risc' },
    });
    expect(insecure.status).toBe(403);
    const unknown = await call('POST', 'stream:update', {
      delivery: { delivery_method: PUSH, url: receiverUrl },
      events_requested: ['https://example.com/not-an-event'],
    });
    expect(unknown.status).toBe(400);
  });

  it('registers, verifies, pushes only requested events, and sends nothing while disabled', async () => {
    const registered = await call('POST', 'stream:update', {
      delivery: { delivery_method: PUSH, url: receiverUrl },
      events_requested: [TOKENS_REVOKED],
    });
    expect(registered).toMatchObject({
      status: 200,
      body: { delivery: { url: receiverUrl }, events_requested: [TOKENS_REVOKED] },
    });
    expect((await call('GET', 'stream')).body.events_requested).toEqual([TOKENS_REVOKED]);

    expect((await call('POST', 'stream:verify', { state: 'hello' })).status).toBe(200);
    const verification = decodeJwt(received.pop()!).payload;
    expect(verification.events[VERIFICATION]).toEqual({ state: 'hello' });
    expect(verification.aud).toBe(f.emulator.clients.server.clientId);

    const { sub } = await f.user();
    await f.exchange(await f.code(sub));
    // Not requested: Google's state changes, nothing is pushed.
    expect(await f.control('POST', `/emulator/users/${sub}/revoke-sessions`)).toEqual({ pushed: false });
    expect(received).toEqual([]);
    expect(await f.control('POST', `/emulator/users/${sub}/revoke-app-access`)).toMatchObject({
      revoked: true,
      pushed: true,
      receiver_status: 202,
    });
    const event = decodeJwt(received.pop()!).payload;
    expect(event.events[TOKENS_REVOKED]).toEqual({
      subject: { subject_type: 'iss-sub', iss: 'https://accounts.google.com', sub },
    });

    expect((await call('POST', 'stream/status:update', { status: 'disabled' })).body).toEqual({
      status: 'disabled',
    });
    expect((await call('GET', 'stream/status')).body).toEqual({ status: 'disabled' });
    await f.exchange(await f.code(sub));
    expect(await f.control('POST', `/emulator/users/${sub}/revoke-app-access`)).toEqual({
      revoked: true,
      pushed: false,
    });
    expect(received).toEqual([]);
    expect((await call('POST', 'stream/status:update', { status: 'paused' })).status).toBe(403);
  });
});
