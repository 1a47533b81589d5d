import sharp from 'sharp';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createJobRunner } from '../../src/app.js';
import { BehalfError } from '../../src/errors.js';
import type { JobRunner } from '../../src/jobs/index.js';
import { enhancedName, enhancePhotosJob } from '../../examples/enhance-photos/job.js';
import { makePhoto } from '../../examples/enhance-photos/photos.js';
import { DRIVE_APPDATA, startHarness, type Harness } from '../support/harness.js';

/** Issue 4: background work for users who are not there. */
describe('job runner', () => {
  let h: Harness;
  let runner: JobRunner | undefined;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterEach(async () => {
    await runner?.stop();
    runner = undefined;
  });
  afterAll(async () => {
    await h.close();
  });

  const signedIn = (scope?: string) => h.signedInUser(scope === undefined ? {} : { scope });

  it('runs the example job for several users; a revoked user is marked needs_consent, the others are done', async () => {
    const subs = [await signedIn(), await signedIn(), await signedIn()];
    const withoutDrive = await signedIn('openid email profile');
    for (const [i, sub] of subs.entries()) {
      for (const n of [1, 2]) {
        await h.control('POST', '/emulator/drive/files', {
          sub,
          name: `photo-${i}-${n}.jpg`,
          mime_type: 'image/jpeg',
          content_base64: (await makePhoto(i * 10 + n)).toString('base64'),
        });
      }
    }
    const revoked = subs[1]!;
    await h.control('POST', '/emulator/grants/revoke', { sub: revoked });

    runner = createJobRunner(h.runtime, { concurrency: 2, pollIntervalMs: 20 });
    runner.define(enhancePhotosJob({ googleApiUrl: h.runtime.behalf.googleApiUrl }));
    runner.start();
    const { enqueued } = await runner.enqueueForScope('enhance-photos', DRIVE_APPDATA);
    expect(enqueued).toBeGreaterThanOrEqual(3);
    expect(await runner.whenIdle(60_000)).toBe(true);

    const runs = await runner.listRuns({ name: 'enhance-photos' });
    expect(runs.find((r) => r.sub === withoutDrive)).toBeUndefined();
    for (const sub of subs) {
      const run = runs.find((r) => r.sub === sub)!;
      if (sub === revoked) {
        expect(run).toMatchObject({ status: 'needs_consent', errorCode: 'NEEDS_CONSENT' });
      } else {
        expect(run.status).toBe('done');
        expect((run.result as { enhanced: string[] }).enhanced).toHaveLength(2);
      }
    }
    const user = (await (await h.service('GET', `/v1/users/${revoked}`)).json()) as {
      grant: { status: string };
    };
    expect(user.grant.status).toBe('needs_consent');

    // The enhanced photo is a real, different JPEG of the same size, written back to appDataFolder.
    const sub = subs[0]!;
    const { token } = await h.runtime.behalf.getAccessToken(sub);
    const list = (await (
      await fetch(`${h.emulator.url}/drive/v3/files?spaces=appDataFolder&fields=files(id,name)`, {
        headers: { authorization: `Bearer ${token}` },
      })
    ).json()) as { files: Array<{ id: string; name: string }> };
    const enhanced = list.files.find((f) => f.name === enhancedName('photo-0-1.jpg'))!;
    const bytes = Buffer.from(
      await (
        await fetch(`${h.emulator.url}/drive/v3/files/${enhanced.id}?alt=media`, {
          headers: { authorization: `Bearer ${token}` },
        })
      ).arrayBuffer(),
    );
    const meta = await sharp(bytes).metadata();
    expect(meta).toMatchObject({ format: 'jpeg', width: 320, height: 240 });
    expect(bytes.equals(await makePhoto(1))).toBe(false);

    // Running again finds nothing left to do.
    const again = await runner.enqueue('enhance-photos', sub);
    await runner.whenIdle(30_000);
    expect(await runner.getRun(again.id)).toMatchObject({ status: 'done', result: { enhanced: [] } });
  });

  it('retries a run that hits a retryable error, and fails one that cannot succeed, each only for its user', async () => {
    const flaky = await signedIn();
    const broken = await signedIn();
    let flakyCalls = 0;
    runner = createJobRunner(h.runtime, {
      concurrency: 2,
      pollIntervalMs: 20,
      backoff: { baseMs: 50, maxMs: 200 },
    });
    runner.define({
      name: 'probe',
      maxAttempts: 3,
      run: async (ctx) => {
        if (ctx.sub === flaky && ++flakyCalls < 2)
          throw new BehalfError('GOOGLE_UNAVAILABLE', 'try later', { retryAfter: 0 });
        if (ctx.sub === broken) throw new Error("bad data in this user's folder");
        return { attempt: ctx.attempt };
      },
    });
    runner.start();
    const a = await runner.enqueue('probe', flaky);
    const b = await runner.enqueue('probe', broken);
    expect(await runner.whenIdle(30_000)).toBe(true);
    expect(await runner.getRun(a.id)).toMatchObject({ status: 'done', attempts: 2, result: { attempt: 2 } });
    expect(await runner.getRun(b.id)).toMatchObject({ status: 'failed', attempts: 1, errorCode: 'Error' });
  });

  it('refuses params it could not store the same way on both backends, before anything is stored', async () => {
    const sub = await signedIn();
    runner = createJobRunner(h.runtime, { pollIntervalMs: 20 });
    runner.define({ name: 'params', run: async () => null });
    for (const params of [{ note: 'a\u0000b' }, { ['k\u0000']: 1 }, () => 1, BigInt(1)]) {
      const error = await runner.enqueue('params', sub, params).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(BehalfError);
      expect((error as BehalfError).code).toBe('INVALID_REQUEST');
    }
    expect(await runner.listRuns({ name: 'params' })).toEqual([]);
    // A backslash and "u0000" as text are fine.
    const run = await runner.enqueue('params', sub, { note: 'a\\u0000b' });
    expect((await runner.getRun(run.id))?.params).toEqual({ note: 'a\\u0000b' });
  });
});
