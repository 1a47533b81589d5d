/**
 * The seed's photo app, end to end, in one command (`npm run example:photos`), against the
 * emulator: three users sign in from the iOS app and leave photos in their Drive appDataFolder;
 * one of them then removes the app's access at Google; the backend, with every user offline,
 * enqueues "enhance-photos" for all users with the drive.appdata scope and a worker runs it.
 *
 * It imports only behalf's public API: the package's front doors, src/index.ts (`behalf`) and
 * src/emulator/index.ts (`behalf/emulator`), by relative path. The package's own name would resolve
 * through package.json "exports" to dist/, which exists only after a build and would be stale
 * while editing; the relative front doors run from source under tsx and type-check under tsc.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmulator } from '../../src/emulator/index.js';
import { createBehalf } from '../../src/index.js';
import { enhancePhotosJob, type EnhanceResult } from './job.js';
import { makePhoto } from './photos.js';

const DRIVE_APPDATA = 'https://www.googleapis.com/auth/drive.appdata';

const emulator = await startEmulator();
const dir = await mkdtemp(join(tmpdir(), 'behalf-example-'));
try {
  await emulator.writeClientSecret(join(dir, 'client_secret.json'));
  const { apps } = emulator.clients;
  const behalf = await createBehalf({
    mode: 'local',
    databaseUrl: `sqlite:${join(dir, 'behalf.db')}`,
    keyFile: join(dir, 'encryption-keys'),
    clientSecretFile: join(dir, 'client_secret.json'),
    appClientIds: [apps.ios, apps.android, apps.web],
    googleDiscoveryUrl: `${emulator.url}/.well-known/openid-configuration`,
    googleApiUrl: emulator.url,
    logLevel: 'error',
  });
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
      scope: `openid email profile ${DRIVE_APPDATA}`,
    });
    await behalf.signIn({ code: code! });
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

  const runner = behalf.createJobRunner({ concurrency: 2, pollIntervalMs: 50 });
  runner.define(enhancePhotosJob({ googleApiUrl: behalf.googleApiUrl }));
  runner.start();
  const { enqueued } = await runner.enqueueForScope('enhance-photos', DRIVE_APPDATA);
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
  await behalf.close();
} finally {
  await emulator.close();
  await rm(dir, { recursive: true, force: true });
}
