import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJobRunner } from '../../src/app.js';
import { recentJobRunsOf } from '../../src/jobs/index.js';
import { startHarness, type Harness } from '../support/harness.js';

/** The admin console's view of a user's job runs (issue 13): newest first, outcome only. */
describe('job run history of one user', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  it("lists a user's runs newest first, up to the limit, with their outcome and without params, results or messages", async () => {
    const sub = await h.signedInUser();
    const other = await h.signedInUser();
    const runner = createJobRunner(h.runtime, { concurrency: 1, pollIntervalMs: 20 });
    runner.define({
      name: 'greet',
      maxAttempts: 1,
      run: async ({ params }) => {
        if ((params as { fail?: boolean }).fail === true) throw new TypeError('a message the app wrote');
        return { echoed: params };
      },
    });
    runner.start();
    try {
      const first = await runner.enqueue('greet', sub, { secret: 'param-value' });
      h.clock.advance(1);
      const second = await runner.enqueue('greet', sub, { fail: true });
      h.clock.advance(1);
      const third = await runner.enqueue('greet', sub, {});
      await runner.enqueue('greet', other, {});
      expect(await runner.whenIdle(60_000)).toBe(true);

      const runs = await recentJobRunsOf(h.runtime.database, sub, 10);
      expect(runs.map((r) => r.id)).toEqual([third.id, second.id, first.id]);
      expect(runs[1]).toEqual({
        id: second.id,
        name: 'greet',
        status: 'failed',
        attempts: 1,
        maxAttempts: 1,
        errorCode: 'TypeError',
        createdAt: second.createdAt,
        finishedAt: expect.any(Number),
      });
      expect(JSON.stringify(runs)).not.toMatch(/param-value|echoed|a message the app wrote/);
      expect((await recentJobRunsOf(h.runtime.database, sub, 2)).map((r) => r.id)).toEqual([
        third.id,
        second.id,
      ]);
      expect(await recentJobRunsOf(h.runtime.database, 'nobody', 10)).toEqual([]);
    } finally {
      await runner.stop();
    }
  });
});
