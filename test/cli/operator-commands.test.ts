import type { ChildProcess } from 'node:child_process';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, start, stop } from './cli-process.js';

/**
 * Issue 12, point 4: what an operator runs. Every command needs only what it uses, `--local`
 * works with local mode's data, results come as text or `--json`, and a bad start says what to
 * change.
 */

const KEY_LINE = /^bhf_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/;
const LOCAL = {
  BEHALF_PORT: '0',
  BEHALF_EMULATOR_PORT: '0',
  BEHALF_DEMO_PORT: '0',
  BEHALF_LOG_LEVEL: 'warn',
};

describe('behalf --version', () => {
  it("prints the package's version", async () => {
    const { version } = JSON.parse(
      await readFile(join(import.meta.dirname, '../../package.json'), 'utf8'),
    ) as { version: string };
    const { code, stdout } = await run(['--version']);
    expect(code).toBe(0);
    expect(stdout).toBe(`${version}\n`);
  }, 120_000);
});

describe('behalf keys: service API keys with nothing but the database', () => {
  let dir: string;
  let env: Record<string, string>;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'behalf-keys-'));
    // No client secret, no encryption keys: these commands only write and read api_keys.
    env = {
      BEHALF_DATABASE_URL: `sqlite:${join(dir, 'behalf.db')}`,
      BEHALF_CLIENT_SECRET_FILE: '',
      BEHALF_ENCRYPTION_KEYS: '',
    };
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('create-api-key, list and revoke; --json for scripts; the key itself is printed once and never listed', async () => {
    const created = await run(['keys', 'create-api-key', '--name', 'billing'], env);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    const key = created.stdout.trim().split('\n').at(-1)!;
    expect(key).toMatch(KEY_LINE);
    const asJson = await run(['keys', 'create-api-key', '--name', 'reports', '--json'], env);
    const second = JSON.parse(asJson.stdout) as { id: string; name: string; created_at: string; key: string };
    expect(second).toMatchObject({ name: 'reports', key: expect.stringMatching(KEY_LINE) as unknown });
    const firstId = key.slice(4, 16);

    const listed = await run(['keys', 'list'], env);
    expect(listed.code).toBe(0);
    const lines = listed.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+NAME\s+CREATED\s+LAST USED$/);
    expect(lines.slice(1).map((line) => line.split(/\s+/).slice(0, 2))).toEqual([
      [firstId, 'billing'],
      [second.id, 'reports'],
    ]);
    expect(lines[1]).toMatch(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+never$/);
    const listedJson = JSON.parse((await run(['keys', 'list', '--json'], env)).stdout) as {
      api_keys: Array<Record<string, unknown>>;
    };
    expect(listedJson.api_keys).toEqual([
      { id: firstId, name: 'billing', created_at: expect.any(String) as unknown, last_used_at: null },
      { id: second.id, name: 'reports', created_at: second.created_at, last_used_at: null },
    ]);
    for (const output of [listed.stdout, JSON.stringify(listedJson)]) {
      expect(output).not.toContain(key.slice(17));
      expect(output).not.toContain(second.key.slice(17));
    }

    const revoked = await run(['keys', 'revoke', firstId, '--json'], env);
    expect(revoked.code).toBe(0);
    expect(JSON.parse(revoked.stdout)).toEqual({ id: firstId, revoked: true });
    expect((await run(['keys', 'list'], env)).stdout).not.toContain(firstId);

    const again = await run(['keys', 'revoke', firstId], env);
    expect(again.code).toBe(66);
    expect(again.stderr).toBe(`behalf: No service API key has the id ${firstId}.\n`);
    const malformed = await run(['keys', 'revoke', 'ABC'], env);
    expect(malformed.code).toBe(64);
    expect(malformed.stderr).toMatch(/^behalf: An API key id is 12 lowercase hexadecimal characters/);
  }, 300_000);
});

describe('local mode data: --local on keys and sweep, and a sweep that must not reach real Google', () => {
  let dir: string;
  let server: ChildProcess | undefined;
  let serverUrl: string;
  let emulatorUrl: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'behalf-local-'));
    const started = await start(['serve', '--local'], LOCAL, /Press Ctrl\+C/, dir);
    server = started.child;
    serverUrl = /server\s+(http:\/\/\S+)/.exec(started.output())![1]!;
    emulatorUrl = /emulator\s+(http:\/\/\S+)/.exec(started.output())![1]!;
    // Be the iOS app: a server auth code for a new user, sent to behalf.
    const call = async (url: string, body: unknown) =>
      (await (
        await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        })
      ).json()) as Record<string, unknown>;
    const clients = (await (await fetch(`${emulatorUrl}/emulator/clients`)).json()) as {
      app_clients: Array<{ client_id: string; platform: string }>;
    };
    const user = await call(`${emulatorUrl}/emulator/users`, { email: 'local@example.com' });
    const { code } = await call(`${emulatorUrl}/emulator/codes`, {
      sub: user.sub,
      client_id: clients.app_clients.find((c) => c.platform === 'ios')!.client_id,
      scope: 'openid email profile https://www.googleapis.com/auth/drive.appdata',
    });
    const signIn = await fetch(`${serverUrl}/v1/google/signin`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-requested-with': 'XMLHttpRequest' },
      body: JSON.stringify({ code }),
    });
    expect(signIn.status).toBe(201);
  }, 120_000);
  afterAll(async () => {
    if (server !== undefined) await stop(server);
    await rm(dir, { recursive: true, force: true });
  });

  it('keys create-api-key --local and keys rotate --local need no client secret', async () => {
    const created = await run(['keys', 'create-api-key', '--local', '--name', 'local backend'], {}, dir);
    expect(created.code).toBe(0);
    expect(created.stdout.trim().split('\n').at(-1)).toMatch(KEY_LINE);
    const rotated = await run(['keys', 'rotate', '--local', '--json'], {}, dir);
    expect(rotated.stderr).toBe('');
    expect(rotated.code).toBe(0);
    expect(JSON.parse(rotated.stdout)).toMatchObject({
      grants: { rows: 1 },
      webhook_secrets: { endpoints: 0 },
    });
  }, 120_000);

  it("sweep --local checks the grants with local mode's running emulator", async () => {
    const swept = await run(['sweep', '--local', '--force', '--json'], {}, dir);
    expect(swept.stderr).toBe('');
    expect(swept.code).toBe(0);
    expect(JSON.parse(swept.stdout)).toMatchObject({
      google: emulatorUrl,
      checked: 1,
      healthy: 1,
      refreshed: 1,
      needs_consent: [],
      unavailable: [],
    });
  }, 120_000);

  it("sweep with the emulator's client secret file but no discovery URL stops before anything is called", async () => {
    const swept = await run(
      ['sweep', '--force'],
      {
        BEHALF_CLIENT_SECRET_FILE: join(dir, '.behalf', 'client_secret.json'),
        BEHALF_GOOGLE_DISCOVERY_URL: '',
      },
      dir,
    );
    expect(swept.code).toBe(78);
    expect(swept.stdout).toBe('');
    // Production mode: both the missing keys and the discovery URL, one line each.
    expect(swept.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^behalf: BEHALF_ENCRYPTION_KEYS: is required in production/) as unknown,
      `behalf: BEHALF_GOOGLE_DISCOVERY_URL: is not set, but the client secret file is a local Google emulator's (its token_uri is ${emulatorUrl}/token): set it to ${emulatorUrl}/.well-known/openid-configuration, or use --local.`,
    ]);
  }, 120_000);

  it('sweep --local says what is missing: local mode never ran here, or it is not running now', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'behalf-empty-'));
    try {
      const never = await run(['sweep', '--local'], {}, empty);
      expect(never.code).toBe(78);
      expect(never.stderr).toBe(
        'behalf: --local: local mode has not run in this folder (no .behalf/client_secret.json); start it with `npm start` (behalf serve --local).\n',
      );
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
    await stop(server!);
    server = undefined;
    const stopped = await run(['sweep', '--local'], {}, dir);
    expect(stopped.code).toBe(75);
    expect(stopped.stderr).toBe(
      `behalf: --local: local mode's emulator (${emulatorUrl}) is not answering: is \`npm start\` running?\n`,
    );
  }, 120_000);
});

describe('a bad start says what to change', () => {
  let dir: string;
  let blocker: Server;
  let port: number;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'behalf-start-'));
    blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    port = (blocker.address() as { port: number }).port;
  });
  afterAll(async () => {
    await new Promise((resolve) => blocker.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  it('a port in use names the port and the setting, and leaves nothing running', async () => {
    const { code, stdout, stderr } = await run(
      ['serve', '--local'],
      { ...LOCAL, BEHALF_PORT: String(port) },
      dir,
    );
    expect(stdout).toBe('');
    expect(stderr).toBe(
      `behalf: BEHALF_PORT: port ${port} is in use on 127.0.0.1 (another behalf, or another program): stop it, or set BEHALF_PORT (--port) to a free port.\n`,
    );
    // The process ended by itself: the emulator and the demo page it had started are closed.
    expect(code).toBe(78);
  }, 120_000);

  it('bad configuration is reported all at once, one line per problem', async () => {
    const { code, stderr } = await run(
      ['serve'],
      {
        BEHALF_PORT: '99999',
        BEHALF_TRUST_PROXY: 'maybe',
        BEHALF_CLIENT_SECRET_FILE: '',
        BEHALF_ENCRYPTION_KEYS: '',
      },
      dir,
    );
    expect(code).toBe(78);
    expect(
      stderr
        .trim()
        .split('\n')
        .map((line) => /^behalf: (BEHALF_\w+):/.exec(line)?.[1]),
    ).toEqual(['BEHALF_ENCRYPTION_KEYS', 'BEHALF_PORT', 'BEHALF_CLIENT_SECRET_FILE', 'BEHALF_TRUST_PROXY']);
  }, 120_000);
});
