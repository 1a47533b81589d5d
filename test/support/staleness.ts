/**
 * Measuring the promise "a change made anywhere is honoured everywhere within the staleness
 * bound" without trusting the machine to be fast: an answer is judged by when its request was
 * sent, not by when it came back, and no sleep stands in for waiting on something to happen.
 */
import { performance } from 'node:perf_hooks';
import { STALENESS_BOUND_MS } from '../../src/database/index.js';

export { STALENESS_BOUND_MS };

/** What one look at a process showed: the state before the change, or the change honoured. */
export type Verdict = { stale: true; detail: string } | { stale: false };

export const stale = (detail: string): Verdict => ({ stale: true, detail });
export const honoured: Verdict = { stale: false };

/**
 * Look with `probe` again and again until it sees the change honoured. A look that still sees the
 * old state fails the test if its request was sent `boundMs` or more after `since` (the moment the
 * process that made the change answered, from performance.now()); earlier, it is allowed. So a
 * process that serves the old state past the bound fails however fast it is asked, and one that
 * is within the bound passes however slowly the test gets to ask. `probe` throws on an answer
 * that is neither. Returns when the first honoured look was sent, in ms after `since`.
 */
export async function expectHonouredWithin(
  what: string,
  probe: () => Promise<Verdict>,
  since: number,
  boundMs: number = STALENESS_BOUND_MS,
): Promise<number> {
  let looks = 0;
  for (;;) {
    const sent = performance.now();
    const verdict = await probe();
    looks++;
    if (!verdict.stale) return Math.round(sent - since);
    if (sent - since >= boundMs) {
      throw new Error(
        `${what}: the change is still not honoured by a request sent ${Math.round(sent - since)} ms after it was made (bound ${boundMs} ms, look ${looks}): ${verdict.detail}`,
      );
    }
    // Pace the looks; the verdict comes from the answers, not from this pause.
    await pause(10);
  }
}

/** Wait until performance.now() reaches `at` (for checks that must be made once the bound has passed). */
export async function waitUntilTime(at: number): Promise<void> {
  const left = at - performance.now();
  if (left > 0) await pause(Math.ceil(left) + 1);
}

/**
 * Make every reader hold `sub`'s token in memory and prove it: each is asked, the stored token is
 * expired behind every cache's back, and each is asked again. A reader that answers the same token
 * again answered from memory (from the store it would have had to refresh, and a refresh mints a
 * new token). Repeats until all do at once, within `deadlineMs`; returns the tokens they hold.
 */
export async function warmFromMemory(
  readers: ReadonlyArray<() => Promise<string>>,
  expireStoredSilently: () => Promise<void>,
  deadlineMs = 30_000,
): Promise<string[]> {
  const deadline = performance.now() + deadlineMs;
  for (let round = 1; ; round++) {
    const first: string[] = [];
    for (const read of readers) first.push(await read());
    await expireStoredSilently();
    const second: string[] = [];
    for (const read of readers) second.push(await read());
    if (second.every((token, i) => token === first[i])) return second;
    if (performance.now() > deadline) {
      throw new Error(`the readers did not all answer from memory within ${deadlineMs} ms (${round} rounds)`);
    }
    await pause(20);
  }
}

export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
