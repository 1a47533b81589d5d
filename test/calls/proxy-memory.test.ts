import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../support/harness.js';

/**
 * The proxy streams: a download passes through in chunks, never held whole. A test file of its
 * own: it measures the process's memory, so it stays out of runs that share the process with
 * other work (mutation testing, see vitest.mutation.config.ts).
 */
describe('the proxy /v1/users/{sub}/google/...', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  const signedIn = () => h.signedInUser();

  it('streams a 50 MB download with flat memory', async () => {
    const sub = await signedIn();
    const size = 50 * 1024 * 1024;
    const file = await h.control<{ id: string }>('POST', '/emulator/drive/files', {
      sub,
      name: 'big.bin',
      size,
    });
    // Retained memory, sampled with a collection first, so garbage from chunks already passed on
    // does not count (vitest runs with --expose-gc, see vitest.config.ts).
    const gc = globalThis.gc;
    expect(gc).toBeTypeOf('function');
    const retained = () => {
      gc!();
      const m = process.memoryUsage();
      return m.heapUsed + m.arrayBuffers;
    };
    const baseline = retained();
    let peak = 0;
    const sample = setInterval(() => {
      peak = Math.max(peak, retained() - baseline);
    }, 20);
    const response = await h.service('GET', `/v1/users/${sub}/google/drive/v3/files/${file.id}?alt=media`);
    expect(response.status).toBe(200);
    let received = 0;
    const reader = response.body!.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      received += value.byteLength;
    }
    clearInterval(sample);
    expect(received).toBe(size);
    // Nothing near the file's size was held at once (it streamed through in chunks).
    expect(peak).toBeLessThan(16 * 1024 * 1024);
  });
});
