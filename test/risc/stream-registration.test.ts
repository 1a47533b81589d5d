import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  readServiceAccountKey,
  registerReceiverAtStartup,
  registerRiscReceiver,
  RISC_EVENTS_REQUESTED,
} from '../../src/risc/index.js';
import { startHarness, type Harness } from '../support/harness.js';

/**
 * Issue 15, point 6, end to end: behalf registers its receiver with Google's RISC API
 * (stream:update, https://developers.google.com/identity/protocols/risc), then a user removes the
 * app's access at Google and the pushed tokens-revoked ends behalf's grant.
 */
describe('RISC stream registration, end to end', () => {
  let h: Harness;
  let dir: string;
  beforeAll(async () => {
    h = await startHarness();
    dir = await mkdtemp(join(tmpdir(), 'behalf-risc-'));
  });
  afterAll(async () => {
    await h.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('registers the receiver; removing the app access pushes tokens-revoked and the grant needs consent', async () => {
    // The project's service account key file, as the Cloud console hands it out.
    const keyFile = join(dir, 'service-account.json');
    await writeFile(keyFile, JSON.stringify(await h.control('GET', '/emulator/service-account')), {
      mode: 0o600,
    });
    const stream = await registerRiscReceiver({
      receiverUrl: `${h.url}/v1/google/risc`,
      discoveryUrl: `${h.emulator.url}/.well-known/openid-configuration`,
      serviceAccount: await readServiceAccountKey(keyFile),
      fetch: globalThis.fetch,
    });
    expect(stream).toMatchObject({
      delivery: { url: `${h.url}/v1/google/risc` },
      events_requested: [...RISC_EVENTS_REQUESTED],
    });
    expect(await h.control('GET', '/emulator/risc/stream')).toMatchObject({
      registered: true,
      status: 'enabled',
    });

    const { sub, code } = await h.newUserWithCode();
    expect((await h.signIn(code)).status).toBe(201);
    const removed = await h.control('POST', `/emulator/users/${sub}/revoke-app-access`);
    expect(removed).toMatchObject({ revoked: true, pushed: true, receiver_status: 202 });

    const user = (await (await h.service('GET', `/v1/users/${sub}`)).json()) as any;
    expect(user.grant).toMatchObject({ status: 'revoked' });
    expect(user.security).toMatchObject({ state: 'tokens_revoked' });
    const token = await h.service('POST', `/v1/users/${sub}/access-token`);
    expect(token.status).toBe(409);
    expect(((await token.json()) as any).error).toBe('NEEDS_CONSENT');
  });

  it('refuses a key file that is not a service account key, and a registration Google refuses', async () => {
    const bad = join(dir, 'not-a-key.json');
    await writeFile(bad, JSON.stringify({ type: 'authorized_user' }));
    await expect(readServiceAccountKey(bad)).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    const key = (await h.control('GET', '/emulator/service-account')) as any;
    await expect(
      registerRiscReceiver({
        receiverUrl: 'http://receiver.example.com/v1/google/risc',
        discoveryUrl: `${h.emulator.url}/.well-known/openid-configuration`,
        serviceAccount: key,
        fetch: globalThis.fetch,
      }),
    ).rejects.toMatchObject({ code: 'GOOGLE_ERROR', message: expect.stringMatching(/403/) });
    await expect(
      registerRiscReceiver({
        receiverUrl: `${h.url}/v1/google/risc`,
        discoveryUrl: `${h.emulator.url}/.well-known/openid-configuration`,
        serviceAccount: { ...key, private_key_id: 'another-key' },
        fetch: globalThis.fetch,
      }),
    ).rejects.toMatchObject({ code: 'GOOGLE_ERROR', message: expect.stringMatching(/401/) });
  });

  it("behalf serve's start-up step: registers when BEHALF_RISC_RECEIVER_URL is set, warns instead of failing", async () => {
    const lines: string[] = [];
    const logger = {
      info: (_fields: unknown, message: string) => void lines.push(`info ${message}`),
      warn: (fields: { error?: string }, message: string) =>
        void lines.push(`warn ${message}: ${fields.error}`),
    } as any;
    const common = {
      discoveryUrl: `${h.emulator.url}/.well-known/openid-configuration`,
      fetch: globalThis.fetch,
      logger,
    };
    expect(
      await registerReceiverAtStartup({ ...common, receiverUrl: undefined, credentialsFile: undefined }),
    ).toBe(false);
    expect(lines).toEqual([]);
    const receiverUrl = `${h.url}/v1/google/risc`;
    expect(await registerReceiverAtStartup({ ...common, receiverUrl, credentialsFile: undefined })).toBe(
      false,
    );
    expect(lines.pop()).toMatch(/^warn RISC receiver not registered .*GOOGLE_APPLICATION_CREDENTIALS/);
    const keyFile = join(dir, 'startup-key.json');
    await writeFile(keyFile, JSON.stringify(await h.control('GET', '/emulator/service-account')));
    expect(await registerReceiverAtStartup({ ...common, receiverUrl, credentialsFile: keyFile })).toBe(true);
    expect(lines.pop()).toBe('info RISC receiver registered with Google');
    expect(await h.control('GET', '/emulator/risc/stream')).toMatchObject({
      registered: true,
      url: receiverUrl,
    });
  });
});
