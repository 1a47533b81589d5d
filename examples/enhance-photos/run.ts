/**
 * The seed's photo app, end to end, in one command (`npm run example:photos`), against the
 * emulator: three users sign in from the iOS app and leave photos in their Drive appDataFolder;
 * one of them then removes the app's access at Google; the backend, with every user offline,
 * enqueues "enhance-photos" for all users with the drive.appdata scope and a worker runs it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createJobRunner, createRuntime } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import { startEmulator } from '../../src/emulator/index.js';
import { SCOPES } from '../../src/google/scopes.js';
import { createLogger } from '../../src/logging.js';
import { enhancePhotosJob, type EnhanceResult } from './job.js';
import { makePhoto } from './photos.js';

const emulator = await startEmulator();
const dir = await mkdtemp(join(tmpdir(), 'behalf-example-'));
try {
  await emulator.writeClientSecret(join(dir, 'client_secret.json'));
  const { apps } = emulator.clients;
  const config = await loadConfig({
    mode: 'local',
    env: {
      BEHALF_DATABASE_URL: `sqlite:${join(dir, 'behalf.db')}`,
      BEHALF_KEY_FILE: join(dir, 'encryption-keys'),
      BEHALF_CLIENT_SECRET_FILE: join(dir, 'client_secret.json'),
      BEHALF_APP_CLIENT_IDS: [apps.ios, apps.android, apps.web].join(','),
      BEHALF_GOOGLE_DISCOVERY_URL: `${emulator.url}/.well-known/openid-configuration`,
      BEHALF_GOOGLE_API_URL: emulator.url,
    },
  });
  const logger = createLogger('error');
  const runtime = await createRuntime(config, { logger });
  const control = async (path: string, body: unknown) => {
    const response = await fetch(`${emulator.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`emulator ${path}: HTTP ${response.status}`);
    return (await response.json()) as Record<string, string>;
  };

  const say = (line: string) => process.stdout.write(`${line}\n`);
  const users: Array<{ name: string; sub: string }> = [];
  for (const [i, name] of ['alice', 'bob', 'carol'].entries()) {
    const user = await control('/emulator/users', { email: `${name}@example.com`, name });
    const { code } = await control('/emulator/codes', {
      sub: user.sub,
      client_id: apps.ios,
      scope: `openid email profile ${SCOPES.driveAppdata}`,
    });
    await runtime.behalf.signIn({ code: code! });
    for (const n of [1, 2]) {
      await control('/emulator/drive/files', {
        sub: user.sub,
        name: `${name}-photo-${n}.jpg`,
        mime_type: 'image/jpeg',
        content_base64: (await makePhoto(i * 10 + n)).toString('base64'),
      });
    }
    users.push({ name, sub: user.sub! });
    say(`${name} signed in from the iOS app and uploaded 2 photos to their appDataFolder`);
  }
  await control('/emulator/grants/revoke', { sub: users[1]!.sub });
  say("bob removed the app's access in his Google Account settings");
  say('');
  say("Everyone is offline now. The backend enhances every user's photos:");

  const runner = createJobRunner(runtime, { concurrency: 2, pollIntervalMs: 50 });
  runner.define(enhancePhotosJob({ googleApiUrl: runtime.behalf.googleApiUrl }));
  runner.start();
  const { enqueued } = await runner.enqueueForScope('enhance-photos', SCOPES.driveAppdata);
  say(`  enqueued ${enqueued} runs of "enhance-photos" (one per user with drive.appdata)`);
  await runner.whenIdle(120_000);
  for (const run of await runner.listRuns({ name: 'enhance-photos' })) {
    const who = users.find((u) => u.sub === run.sub)?.name ?? run.sub;
    const detail =
      run.status === 'done'
        ? `enhanced ${(run.result as EnhanceResult).enhanced.join(', ')}`
        : `${run.errorCode}: ${run.errorMessage}`;
    say(`  ${who.padEnd(6)} ${run.status.padEnd(14)} ${detail}`);
  }
  await runner.stop();
  await runtime.behalf.close();
} finally {
  await emulator.close();
  await rm(dir, { recursive: true, force: true });
}
