/**
 * Bounded waiting for tests that must pass on a busy machine: poll a condition until it holds or
 * a deadline passes, never a bare sleep standing in for "it must have happened by now".
 */

/**
 * Resolve once `condition` returns (or resolves to) true, checking every `everyMs`; reject after
 * `timeoutMs` with a message saying what was awaited.
 */
export async function waitUntil(
  what: string,
  condition: () => boolean | Promise<boolean>,
  options: { timeoutMs?: number; everyMs?: number } = {},
): Promise<void> {
  const { timeoutMs = 15_000, everyMs = 10 } = options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() >= deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting until ${what}.`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
