import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, start, stop } from './cli-process.js';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The command line: the names other tests and operators rely on (issue 3). Each test starts CLI processes: 120 s each on a busy machine. */
describe('behalf CLI', () => {
  let dir: string;
  let emulator: ChildProcess;
  let emulatorUrl: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'behalf-cli-'));
    const secretFile = join(dir, 'client_secret.json');
    const started = await start(
      ['emulator', '--port', '0', '--write-client-secret', secretFile],
      {},
      /listening on (http:\/\/127\.0\.0\.1:\d+)/,
    );
    emulator = started.child;
    emulatorUrl = started.match[1]!;
    const clients = (await (await fetch(`${emulatorUrl}/emulator/clients`)).json()) as {
      app_clients: Array<{ client_id: string }>;
    };
    env = {
      BEHALF_DATABASE_URL: `sqlite:${join(dir, 'behalf.db')}`,
      BEHALF_CLIENT_SECRET_FILE: secretFile,
      BEHALF_APP_CLIENT_IDS: clients.app_clients.map((c) => c.client_id).join(','),
      BEHALF_GOOGLE_DISCOVERY_URL: `${emulatorUrl}/.well-known/openid-configuration`,
      BEHALF_GOOGLE_API_URL: emulatorUrl,
      BEHALF_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString('base64')}`,
      BEHALF_HOST: '127.0.0.1',
      BEHALF_LOG_LEVEL: 'warn',
    };
  }, 90_000);
  afterAll(async () => {
    await stop(emulator);
    await rm(dir, { recursive: true, force: true });
  });

  it("emulator --write-client-secret writes Google's file shape, owner-only", async () => {
    const json = JSON.parse(await readFile(join(dir, 'client_secret.json'), 'utf8')) as {
      web: Record<string, unknown>;
    };
    expect(json.web.client_id).toMatch(/\.apps\.googleusercontent\.com$/);
    expect(json.web.token_uri).toBe(`${emulatorUrl}/token`);
  });

  it('keys create-api-key prints a new key on its last line', async () => {
    const { code, stdout } = await run(['keys', 'create-api-key', '--name', 'test'], env);
    expect(code).toBe(0);
    expect(stdout.trim().split('\n').at(-1)).toMatch(/^bhf_[a-z0-9]{12}_[A-Za-z0-9_-]{43}$/);
  }, 120_000);

  it('keys generate prints an ID:BASE64 entry of a 32-byte key', async () => {
    const { stdout } = await run(['keys', 'generate', '--id', 'k2']);
    const [id, key] = stdout.trim().split(':');
    expect(id).toBe('k2');
    expect(Buffer.from(key!, 'base64')).toHaveLength(32);
  }, 120_000);

  it('serve answers a sign-in and stops cleanly on SIGTERM', async () => {
    const port = await freePort();
    const server = await start(
      ['serve'],
      { ...env, BEHALF_PORT: String(port), BEHALF_LOG_LEVEL: 'info' },
      /behalf is listening/,
    );
    try {
      const user = (await (
        await fetch(`${emulatorUrl}/emulator/users`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ email: 'cli@example.com' }),
        })
      ).json()) as { sub: string };
      const clients = (await (await fetch(`${emulatorUrl}/emulator/clients`)).json()) as {
        app_clients: Array<{ client_id: string }>;
      };
      const { code } = (await (
        await fetch(`${emulatorUrl}/emulator/codes`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            sub: user.sub,
            client_id: clients.app_clients[0]!.client_id,
            scope: 'openid email profile',
          }),
        })
      ).json()) as { code: string };
      const response = await fetch(`http://127.0.0.1:${port}/v1/google/signin`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-requested-with': 'XMLHttpRequest' },
        body: JSON.stringify({ code }),
      });
      expect(response.status).toBe(201);
    } finally {
      expect(await stop(server.child)).toBe(0);
    }
  }, 120_000);

  it('bad configuration stops start-up with one line naming the setting', async () => {
    const { code, stderr } = await run(['serve'], { ...env, BEHALF_ENCRYPTION_KEYS: 'k1:c2hvcnQ=' });
    expect(code).toBe(78);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/^behalf: BEHALF_ENCRYPTION_KEYS: key 'k1' is 5 bytes/);
  }, 120_000);
});
