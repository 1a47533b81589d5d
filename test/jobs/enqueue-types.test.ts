import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import type { JobContext, JobRun } from '../../src/index.js';
import { startHarness, type Harness } from '../support/harness.js';

interface Resize {
  width: number;
  height?: number;
}

/**
 * Issue 12, point 5: `enqueue()` is typed by the job's parameter type. The `@ts-expect-error`
 * lines are the type test (tsc --noEmit, part of npm test, fails if one of them compiles); the
 * calls also run, against a real runner, to show what a JavaScript caller meets instead.
 */
describe('enqueue is typed by the job', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  it('a chained define makes enqueue check the name and the params', async () => {
    const sub = await h.signedInUser();
    const runner = h.runtime.behalf
      .createJobRunner({ concurrency: 1, pollIntervalMs: 20 })
      .define({
        name: 'resize',
        run: async (ctx: JobContext<Resize>) => ({ area: ctx.params.width * (ctx.params.height ?? 1) }),
      })
      .define({ name: 'ping', run: async () => 'pong' });
    try {
      expectTypeOf(runner.enqueue<'resize'>)
        .parameter(2)
        .toEqualTypeOf<Resize>();
      const run = await runner.enqueue('resize', sub, { width: 3, height: 2 });
      expectTypeOf(run).toEqualTypeOf<JobRun>();
      expect(run).toMatchObject({ name: 'resize', sub, params: { width: 3, height: 2 }, status: 'queued' });

      // A job whose params are all optional (or none) may be enqueued without them: `{}` is stored.
      expect((await runner.enqueue('ping', sub)).params).toEqual({});
      const delayed = await runner.enqueue('ping', sub, {}, { delayMs: 60_000 });
      expect(delayed.status).toBe('queued');

      // @ts-expect-error resize needs its params
      await expect(runner.enqueue('resize', sub)).resolves.toMatchObject({ params: {} });
      // @ts-expect-error width is a number
      await expect(runner.enqueue('resize', sub, { width: 'wide' })).resolves.toBeDefined();
      // @ts-expect-error a job nobody defined: NOT_FOUND when the program runs
      await expect(runner.enqueue('rezise', sub, { width: 1 })).rejects.toMatchObject({ code: 'NOT_FOUND' });
      // @ts-expect-error enqueueForScope takes the same params
      await expect(runner.enqueueForScope('resize', 'openid', { width: '1' })).resolves.toBeDefined();
    } finally {
      await runner.stop();
    }
  });

  it('jobs declared up front type a runner whose jobs are defined one statement at a time', async () => {
    const sub = await h.signedInUser();
    const runner = h.runtime.behalf.createJobRunner<{ resize: Resize }>({ pollIntervalMs: 20 });
    runner.define({ name: 'resize', run: async (ctx: JobContext<Resize>) => ctx.params.width });
    try {
      expect((await runner.enqueue('resize', sub, { width: 1 })).params).toEqual({ width: 1 });
      // @ts-expect-error height alone is not a Resize
      await expect(runner.enqueue('resize', sub, { height: 1 })).resolves.toBeDefined();
      const { enqueued } = await runner.enqueueForScope('resize', 'openid', { width: 2 });
      expect(enqueued).toBeGreaterThanOrEqual(1);
    } finally {
      await runner.stop();
    }
  });

  it('an untyped runner (define as a statement) takes any name and params, as before', async () => {
    const sub = await h.signedInUser();
    const runner = h.runtime.behalf.createJobRunner({ pollIntervalMs: 20 });
    runner.define({ name: 'anything', run: async () => null });
    try {
      expectTypeOf(runner.enqueue<string>)
        .parameter(2)
        .toEqualTypeOf<unknown>();
      expect((await runner.enqueue('anything', sub, { any: ['thing'] })).params).toEqual({ any: ['thing'] });
    } finally {
      await runner.stop();
    }
  });
});
