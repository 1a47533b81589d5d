/**
 * The job backends' contract suite: every JobBackend runs exactly these tests, unchanged
 * (`runJobBackendContract('postgres', …)` beside `runJobBackendContract('sqlite', …)`), as the
 * vault's store does (test/vault/store-contract.ts).
 *
 * A backend keeps one row per job run (its status and outcome) and delivers runs to `execute`
 * through its queue. Issue 11, point 5: deleting a user is one transaction that removes their job
 * runs and cancels their queued deliveries, so nothing of theirs runs afterwards.
 *
 * `makeWorld` must return an empty, migrated database with the vault's store over it; the suite
 * stops every backend it made before it closes the world. Delivery is polled: every wait here has
 * a deadline, and no assertion relies on a sleep having been long enough.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { JobBackend, JobRun } from '../../src/jobs/index.js';
import type { Store } from '../../src/vault/index.js';
import { waitUntil } from '../support/deadline.js';
import { profile } from '../vault/store-contract.js';

const T0 = 1_760_000_000_000;
/** As fast as a backend will poll; Postgres's queue polls at most every 500 ms whatever is asked. */
const POLL_MS = 20;

export interface JobBackendWorld {
  /** The vault's store over the same database object as every backend made here. */
  store: Store;
  /** A new job backend over the world's database object (the database belongs to the world, not to the backend). */
  makeBackend(options: { pollIntervalMs: number }): JobBackend;
  /** Close the database. */
  close(): Promise<void>;
}

function jobRun(overrides: Partial<JobRun> = {}): JobRun {
  return {
    id: randomUUID(),
    name: 'sync',
    sub: 'alice',
    params: { folder: 'root' },
    status: 'queued',
    attempts: 0,
    maxAttempts: 5,
    errorCode: null,
    errorMessage: null,
    result: null,
    createdAt: T0,
    updatedAt: T0,
    finishedAt: null,
    ...overrides,
  };
}

/** What a backend delivered to `execute`: run ids in delivery order, and when (Date.now()). */
interface Deliveries {
  ids: string[];
  at: Map<string, number[]>;
  execute: (runId: string) => Promise<void>;
  count(id: string): number;
}

function deliveries(body: (runId: string) => Promise<void> = async () => undefined): Deliveries {
  const ids: string[] = [];
  const at = new Map<string, number[]>();
  return {
    ids,
    at,
    async execute(runId) {
      ids.push(runId);
      at.set(runId, [...(at.get(runId) ?? []), Date.now()]);
      await body(runId);
    },
    count: (id) => ids.filter((each) => each === id).length,
  };
}

const sorted = (ids: readonly string[]) => [...ids].sort();

export function runJobBackendContract(name: string, makeWorld: () => Promise<JobBackendWorld>): void {
  describe(`JobBackend contract: ${name}`, () => {
    let world: JobBackendWorld;
    let made: JobBackend[];

    beforeEach(async () => {
      world = await makeWorld();
      made = [];
    });

    afterEach(async () => {
      for (const backend of made) await backend.stop();
      await world.close();
    });

    function backend(): JobBackend {
      const created = world.makeBackend({ pollIntervalMs: POLL_MS });
      made.push(created);
      return created;
    }

    describe('runs', () => {
      it('keeps a run as it was inserted, JSON params included; an unknown id is null', async () => {
        const jobs = backend();
        const run = jobRun({
          params: { folder: 'Fotos – 2024 ✓', ids: [1, 2.5, -3], deep: { ok: true, none: null }, empty: '' },
          maxAttempts: 3,
        });
        const plain = jobRun({ params: 'just a string' });
        await jobs.insertRun(run);
        await jobs.insertRun(plain);
        expect(await jobs.getRun(run.id)).toEqual(run);
        expect(await jobs.getRun(plain.id)).toEqual(plain);
        expect(await jobs.getRun('no-such-run')).toBeNull();
      });

      it('lists runs oldest first, by name, status and user, each alone or together, up to a limit', async () => {
        const jobs = backend();
        const r1 = jobRun({ name: 'sync', sub: 'alice', status: 'queued', createdAt: T0 + 1 });
        const r2 = jobRun({ name: 'sync', sub: 'bob', status: 'done', createdAt: T0 + 2 });
        const r3 = jobRun({ name: 'export', sub: 'alice', status: 'failed', createdAt: T0 + 3 });
        const r4 = jobRun({ name: 'sync', sub: 'alice', status: 'done', createdAt: T0 + 4 });
        // Inserted out of order: the list is ordered by creation, not by insertion.
        for (const run of [r4, r2, r1, r3]) await jobs.insertRun(run);

        expect(await jobs.listRuns({})).toEqual([r1, r2, r3, r4]);
        expect(await jobs.listRuns({ name: 'sync' })).toEqual([r1, r2, r4]);
        expect(await jobs.listRuns({ status: 'done' })).toEqual([r2, r4]);
        expect(await jobs.listRuns({ sub: 'alice' })).toEqual([r1, r3, r4]);
        expect(await jobs.listRuns({ name: 'sync', sub: 'alice' })).toEqual([r1, r4]);
        expect(await jobs.listRuns({ name: 'sync', sub: 'alice', status: 'done' })).toEqual([r4]);
        expect(await jobs.listRuns({ name: 'export', status: 'queued' })).toEqual([]);
        expect(await jobs.listRuns({ name: 'nothing' })).toEqual([]);
        expect(await jobs.listRuns({ limit: 2 })).toEqual([r1, r2]);
        expect(await jobs.listRuns({ sub: 'alice', limit: 1 })).toEqual([r1]);
      });

      it('orders runs created at the same time by id, byte-wise, on every backend', async () => {
        const jobs = backend();
        // Byte order puts upper case before lower case; a human collation would not.
        const ids = ['B-run', 'a-run', 'a_run', 'A-run', 'b-run'];
        for (const id of ids) await jobs.insertRun(jobRun({ id, createdAt: T0 }));
        expect((await jobs.listRuns({})).map((run) => run.id)).toEqual([
          'A-run',
          'B-run',
          'a-run',
          'a_run',
          'b-run',
        ]);
      });

      it('updateRun changes what the patch names and nothing else', async () => {
        const jobs = backend();
        const run = jobRun();
        await jobs.insertRun(run);

        await jobs.updateRun(run.id, { status: 'running', attempts: 1, updatedAt: T0 + 10 });
        expect(await jobs.getRun(run.id)).toEqual({
          ...run,
          status: 'running',
          attempts: 1,
          updatedAt: T0 + 10,
        });

        await jobs.updateRun(run.id, {
          status: 'retrying',
          errorCode: 'GOOGLE_UNAVAILABLE',
          errorMessage: 'Google answered 503.',
          updatedAt: T0 + 20,
        });
        expect(await jobs.getRun(run.id)).toEqual({
          ...run,
          status: 'retrying',
          attempts: 1,
          errorCode: 'GOOGLE_UNAVAILABLE',
          errorMessage: 'Google answered 503.',
          updatedAt: T0 + 20,
        });

        const result = { enhanced: ['a.jpg', 'b ✓.jpg'], count: 2, nested: { ok: true } };
        await jobs.updateRun(run.id, {
          status: 'done',
          attempts: 2,
          errorCode: null,
          errorMessage: null,
          result,
          updatedAt: T0 + 30,
          finishedAt: T0 + 30,
        });
        expect(await jobs.getRun(run.id)).toEqual({
          ...run,
          status: 'done',
          attempts: 2,
          result,
          updatedAt: T0 + 30,
          finishedAt: T0 + 30,
        });

        await jobs.updateRun(run.id, { result: 'a plain string', maxAttempts: 9 });
        expect(await jobs.getRun(run.id)).toMatchObject({
          status: 'done',
          result: 'a plain string',
          maxAttempts: 9,
          params: run.params,
          createdAt: T0,
        });
      });

      it('updateRun of a run that is not there (or no longer: its user was deleted) does nothing', async () => {
        const jobs = backend();
        const other = jobRun();
        await jobs.insertRun(other);
        await expect(
          jobs.updateRun('no-such-run', { status: 'done', finishedAt: T0 }),
        ).resolves.toBeUndefined();
        expect(await jobs.getRun('no-such-run')).toBeNull();
        expect(await jobs.listRuns({})).toEqual([other]);
      });
    });

    describe('delivery', () => {
      it('delivers every run of the started jobs exactly once, inserted before or after start; other jobs wait', async () => {
        const jobs = backend();
        const before = [jobRun({ name: 'sync' }), jobRun({ name: 'sync' }), jobRun({ name: 'export' })];
        const after = [jobRun({ name: 'sync' }), jobRun({ name: 'export' }), jobRun({ name: 'export' })];
        const unworked = jobRun({ name: 'nobody-works-this' });
        for (const run of [...before, unworked]) await jobs.insertRun(run);
        const seen = deliveries();
        jobs.start(['sync', 'export'], 2, seen.execute);
        for (const run of after) await jobs.insertRun(run);

        const expected = [...before, ...after].map((run) => run.id);
        await waitUntil('every run of a started job is delivered', () =>
          expected.every((id) => seen.count(id) > 0),
        );
        // Nothing left but the delivery nobody works on: no second delivery can still come.
        await waitUntil('only the unworked run is outstanding', async () => (await jobs.outstanding()) === 1);
        expect(sorted(seen.ids)).toEqual(sorted(expected));
        expect(seen.count(unworked.id)).toBe(0);
      });

      it('one run at a time per slot: concurrency bounds the deliveries in progress', async () => {
        const jobs = backend();
        let inProgress = 0;
        let most = 0;
        const seen = deliveries(async () => {
          inProgress++;
          most = Math.max(most, inProgress);
          // Hold each delivery until another could have started beside it.
          await new Promise((resolve) => setTimeout(resolve, 50));
          inProgress--;
        });
        const runs = Array.from({ length: 5 }, () => jobRun());
        for (const run of runs) await jobs.insertRun(run);
        jobs.start(['sync'], 2, seen.execute);
        await waitUntil('all five are delivered', () => runs.every((run) => seen.count(run.id) === 1));
        expect(most).toBeLessThanOrEqual(2);
      });

      it('a delayed run is not delivered before its delay has passed', async () => {
        const jobs = backend();
        const seen = deliveries();
        jobs.start(['sync'], 1, seen.execute);
        const delayMs = 1_500;
        const delayed = jobRun();
        const marker = jobRun();
        const insertedAt = Date.now();
        await jobs.insertRun(delayed, delayMs);
        await jobs.insertRun(marker);
        await waitUntil('the undelayed run is delivered', () => seen.count(marker.id) === 1);
        await waitUntil('the delayed run is delivered', () => seen.count(delayed.id) === 1);
        // A few ms for two clocks read in two places (the queue's, or the database's, and this one).
        expect(seen.at.get(delayed.id)![0]! - insertedAt).toBeGreaterThanOrEqual(delayMs - 10);
        expect(seen.count(delayed.id)).toBe(1);
      });

      it('requeue delivers a run again, after its delay', async () => {
        const jobs = backend();
        const seen = deliveries();
        const run = jobRun();
        await jobs.insertRun(run);
        jobs.start(['sync'], 1, seen.execute);
        await waitUntil('the first delivery', () => seen.count(run.id) === 1);
        await jobs.requeue(run, 0);
        await waitUntil('the second delivery', () => seen.count(run.id) === 2);
        const requeuedAt = Date.now();
        await jobs.requeue(run, 1_000);
        await waitUntil('the third delivery', () => seen.count(run.id) === 3);
        expect(seen.at.get(run.id)![2]! - requeuedAt).toBeGreaterThanOrEqual(1_000 - 10);
        // A requeue is one delivery more, and only one.
        await waitUntil('nothing outstanding', async () => (await jobs.outstanding()) === 0);
        expect(seen.count(run.id)).toBe(3);
      });

      it('a delivery whose execute fails is delivered again, a second later, three times at most', async () => {
        const jobs = backend();
        const flaky = jobRun();
        const broken = jobRun();
        let flakyFailures = 0;
        // execute fails when behalf cannot record the outcome (the database busy or unreachable).
        const seen = deliveries(async (runId) => {
          if (runId === flaky.id && flakyFailures++ === 0) throw new Error('store unavailable, once');
          if (runId === broken.id) throw new Error('store unavailable, always');
        });
        await jobs.insertRun(flaky);
        await jobs.insertRun(broken);
        jobs.start(['sync'], 2, seen.execute);
        await waitUntil('the flaky delivery is made again', () => seen.count(flaky.id) === 2, {
          timeoutMs: 20_000,
        });
        await waitUntil(
          'the broken one has used up its deliveries',
          async () => (await jobs.outstanding()) === 0,
          { timeoutMs: 20_000 },
        );
        expect(seen.count(flaky.id)).toBe(2);
        expect(seen.count(broken.id)).toBe(4);
        const [first, second] = seen.at.get(flaky.id)!;
        expect(second! - first!).toBeGreaterThanOrEqual(1_000 - 10);
      });

      it('outstanding() counts deliveries waiting, delayed ones and requeued ones included', async () => {
        const jobs = backend();
        expect(await jobs.outstanding()).toBe(0);
        const now = [jobRun(), jobRun()];
        const later = jobRun();
        for (const run of now) await jobs.insertRun(run);
        await jobs.insertRun(later, 60_000);
        expect(await jobs.outstanding()).toBe(3);
        await jobs.requeue(now[0]!, 60_000);
        expect(await jobs.outstanding()).toBe(4);

        const seen = deliveries();
        jobs.start(['sync'], 2, seen.execute);
        await waitUntil('the undelayed runs are delivered', () =>
          now.every((run) => seen.count(run.id) === 1),
        );
        await waitUntil(
          'the two delayed deliveries are all that is outstanding',
          async () => (await jobs.outstanding()) === 2,
        );
        expect(seen.count(later.id)).toBe(0);
      });
    });

    describe('stop', () => {
      it('stops delivery and leaves the database open for its owner', async () => {
        const first = backend();
        const seenFirst = deliveries();
        const early = jobRun();
        await first.insertRun(early);
        first.start(['sync'], 2, seenFirst.execute);
        await waitUntil('the first backend delivers', () => seenFirst.count(early.id) === 1);
        await first.stop();
        const stoppedWith = [...seenFirst.ids];

        // The database still answers, through the stopped backend and through the vault.
        expect(await first.getRun(early.id)).toEqual(early);
        expect(await world.store.getUser('nobody')).toBeNull();

        // A run queued now goes to a backend that is running, never to the stopped one.
        const second = backend();
        const seenSecond = deliveries();
        const late = jobRun();
        await second.insertRun(late);
        second.start(['sync'], 1, seenSecond.execute);
        await waitUntil('the running backend delivers', () => seenSecond.count(late.id) === 1);
        expect(seenFirst.ids).toEqual(stoppedWith);
        expect(seenFirst.count(late.id)).toBe(0);
      });

      it('nothing is delivered once stop() has resolved, even when it is called as the workers start', async () => {
        const late: string[] = [];
        const seen = deliveries();
        const runs = Array.from({ length: 4 }, () => jobRun());
        for (const [i, run] of runs.entries()) {
          const jobs = backend();
          await jobs.insertRun(run);
          let stopped = false;
          jobs.start(['sync'], 2, async (runId) => {
            if (stopped) late.push(runId);
            await seen.execute(runId);
          });
          // Stop at once, or after the workers have had a moment to begin polling.
          if (i % 2 === 1) await new Promise((resolve) => setImmediate(resolve));
          await jobs.stop();
          stopped = true;
        }
        // Whatever was not delivered before the stops goes to a backend that runs.
        const last = backend();
        last.start(['sync'], 2, seen.execute);
        await waitUntil('every run is delivered', () => runs.every((run) => seen.count(run.id) >= 1));
        expect(late).toEqual([]);
        for (const run of runs) expect(seen.count(run.id), run.id).toBe(1);
      });

      it('waits for the deliveries in progress before it resolves', async () => {
        const jobs = backend();
        const order: string[] = [];
        let release!: () => void;
        const gate = new Promise<void>((resolve) => {
          release = resolve;
        });
        const seen = deliveries(async () => {
          order.push('started');
          await gate;
          order.push('finished');
        });
        const run = jobRun();
        await jobs.insertRun(run);
        jobs.start(['sync'], 1, seen.execute);
        await waitUntil('the delivery is in progress', () => order.includes('started'));
        const stopping = jobs.stop().then(() => order.push('stopped'));
        // Release the delivery a little later; a stop that did not wait would have resolved by then.
        setTimeout(() => {
          order.push('released');
          release();
        }, 50);
        await stopping;
        expect(order).toEqual(['started', 'released', 'finished', 'stopped']);
      });
    });

    it('deleting a user removes their job runs and cancels their queued deliveries, delayed and requeued ones too (issue 11, point 5)', async () => {
      const { store } = world;
      for (const sub of ['doomed', 'kept']) {
        await store.saveSignIn({
          user: profile(sub),
          clientId: 'c.apps.googleusercontent.com',
          scopes: ['openid'],
          refreshTokenCiphertext: randomBytes(40),
          accessTokenCiphertext: randomBytes(40),
          accessTokenExpiresAt: T0 + 3_600_000,
          now: T0,
        });
      }
      const jobs = backend();
      const doomedNow = jobRun({ sub: 'doomed' });
      const doomedLater = jobRun({ sub: 'doomed', name: 'export' });
      const kept = jobRun({ sub: 'kept' });
      await jobs.insertRun(doomedNow);
      await jobs.insertRun(doomedLater, 300);
      await jobs.insertRun(kept);
      await jobs.requeue(doomedNow, 200);
      expect(await jobs.outstanding()).toBe(4);

      expect(await store.deleteUser('doomed')).toBe(true);

      expect(await jobs.listRuns({ sub: 'doomed' })).toEqual([]);
      expect(await jobs.getRun(doomedNow.id)).toBeNull();
      expect(await jobs.getRun(doomedLater.id)).toBeNull();
      expect(await jobs.listRuns({})).toEqual([kept]);
      // Their deliveries are gone, the delayed ones included: only the other user's is waiting.
      expect(await jobs.outstanding()).toBe(1);

      const seen = deliveries();
      jobs.start(['sync', 'export'], 2, seen.execute);
      await waitUntil("the other user's run is delivered", () => seen.count(kept.id) === 1);
      await waitUntil('nothing outstanding', async () => (await jobs.outstanding()) === 0);
      expect(seen.ids).toEqual([kept.id]);
    });
  });
}
