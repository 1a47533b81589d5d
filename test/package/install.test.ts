/**
 * Issue 12, point 6: the package as a user gets it. Build a copy of this working tree, `npm pack`
 * it, install the tarball into a fresh project on this Node (20), and run createBehalf there
 * through the package's public entry points (`behalf`, `behalf/emulator`): a sign-in and an
 * access token against the emulator, stored in SQLite. The install must give no engine warning
 * (cookie@2, which needs Node 22, once came in through fastify → light-my-request), and the
 * tarball must carry the licence, the security policy and the docs.
 *
 * Slow (a TypeScript build and an npm install, minutes on a busy machine), so it has a long
 * timeout; it uses npm's cache first (`--prefer-offline`) and the registry only for what is missing.
 */
import { execFile } from 'node:child_process';
import { copyFile, cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const exec = promisify(execFile);
const ROOT = join(import.meta.dirname, '../..');
const NPM_QUIET = ['--no-audit', '--no-fund', '--prefer-offline'];

describe('the packed tarball', () => {
  let dir: string;
  let tarball: string;
  let packed: string[];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'behalf-package-'));
    // A copy of what the package is built from, so the build writes nothing into the working tree.
    const source = join(dir, 'source');
    await mkdir(source);
    for (const entry of [
      'package.json',
      'README.md',
      'LICENSE',
      'SECURITY.md',
      'docs',
      'src',
      'tsconfig.json',
      'tsconfig.build.json',
    ]) {
      await cp(join(ROOT, entry), join(source, entry), { recursive: true });
    }
    await symlink(join(ROOT, 'node_modules'), join(source, 'node_modules'), 'dir');
    await exec(
      process.execPath,
      [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
      { cwd: source },
    );
    const { stdout } = await exec('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], {
      cwd: source,
    });
    const [result] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    tarball = join(dir, result!.filename);
    packed = result!.files.map((f) => f.path);
  }, 900_000);
  afterAll(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('carries the licence, the security policy, the docs and the build, not the sources or tests', () => {
    expect(packed).toEqual(
      expect.arrayContaining([
        'LICENSE',
        'SECURITY.md',
        'README.md',
        'package.json',
        'docs/emulator.md',
        'docs/webhooks.md',
      ]),
    );
    expect(packed).toEqual(
      expect.arrayContaining([
        'dist/index.js',
        'dist/index.d.ts',
        'dist/emulator/index.js',
        'dist/client/index.js',
        'dist/client/index.d.ts',
        'dist/cli/main.js',
      ]),
    );
    expect(
      packed.filter(
        (path) =>
          !/^(dist|docs)\//.test(path) &&
          !['LICENSE', 'SECURITY.md', 'README.md', 'package.json'].includes(path),
      ),
    ).toEqual([]);
  });

  it('installs into a fresh project on this Node without an engine warning, and createBehalf signs a user in there', async () => {
    const consumer = join(dir, 'consumer');
    await mkdir(consumer);
    await writeFile(
      join(consumer, 'package.json'),
      JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }),
    );
    // --engine-strict: a dependency that does not support this Node fails the install outright.
    // --ignore-scripts: better-sqlite3's install script would fetch a prebuilt binary from GitHub or
    // compile SQLite for minutes; the same version's binary, built for this Node, is copied below.
    const installed = await exec(
      'npm',
      ['install', tarball, '--engine-strict', '--ignore-scripts', ...NPM_QUIET],
      { cwd: consumer },
    );
    expect(`${installed.stdout}\n${installed.stderr}`).not.toMatch(/EBADENGINE|engine/i);
    const version = async (base: string) =>
      (
        JSON.parse(await readFile(join(base, 'node_modules/better-sqlite3/package.json'), 'utf8')) as {
          version: string;
        }
      ).version;
    expect(await version(consumer)).toBe(await version(ROOT));
    const binary = 'node_modules/better-sqlite3/build/Release/better_sqlite3.node';
    await mkdir(join(consumer, 'node_modules/better-sqlite3/build/Release'), { recursive: true });
    await copyFile(join(ROOT, binary), join(consumer, binary));

    const { stdout: tree } = await exec('npm', ['ls', '--all', '--json'], { cwd: consumer });
    expect(JSON.stringify(JSON.parse(tree))).not.toMatch(/"cookie":\{"version":"2\./);

    await writeFile(join(consumer, 'run.mjs'), CONSUMER_SCRIPT);
    const { stdout } = await exec(process.execPath, ['run.mjs'], { cwd: consumer });
    expect(JSON.parse(stdout)).toEqual({
      email: 'packaged@example.com',
      created: true,
      offlineAccess: true,
      token: true,
      errorCode: 'USER_NOT_FOUND',
    });
  }, 900_000);
});

/** A user's first program: the emulator, createBehalf, a sign-in, an access token; only the public API. */
const CONSUMER_SCRIPT = `
import { randomBytes } from 'node:crypto';
import { createBehalf, isBehalfError } from 'behalf';
import { startEmulator } from 'behalf/emulator';

const emulator = await startEmulator({ port: 0 });
await emulator.writeClientSecret('client_secret.json');
const behalf = await createBehalf({
  clientSecretFile: 'client_secret.json',
  appClientIds: [emulator.clients.apps.ios],
  databaseUrl: 'sqlite:behalf.db',
  encryptionKeys: 'k1:' + randomBytes(32).toString('base64'),
  googleDiscoveryUrl: emulator.url + '/.well-known/openid-configuration',
  googleApiUrl: emulator.url,
  logLevel: 'silent',
});
const control = async (path, body) =>
  (await fetch(emulator.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })).json();
const user = await control('/emulator/users', { email: 'packaged@example.com' });
const { code } = await control('/emulator/codes', { sub: user.sub, client_id: emulator.clients.apps.ios, scope: 'openid email profile' });
const signedIn = await behalf.signIn({ code });
const token = await behalf.getAccessToken(user.sub);
const errorCode = await behalf.getAccessToken('nobody').then(() => null, (error) => (isBehalfError(error) ? error.code : 'not a BehalfError'));
await behalf.close();
await emulator.close();
process.stdout.write(JSON.stringify({
  email: signedIn.user.email,
  created: signedIn.created,
  offlineAccess: signedIn.grant.offlineAccess,
  token: typeof token.token === 'string' && token.token.length > 0,
  errorCode,
}));
`;
