/**
 * Time is injected: every piece that needs "now" receives a Clock, so tests (and the emulator's
 * `POST /emulator/clock`) move time without monkey-patching Date.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock that runs with real time plus an offset that can only move forward. */
export class OffsetClock implements Clock {
  #offsetMs = 0;
  constructor(private readonly base: Clock = systemClock) {}

  now(): number {
    return this.base.now() + this.#offsetMs;
  }

  advance(seconds: number): number {
    if (!Number.isFinite(seconds) || seconds < 0)
      throw new RangeError('advance takes a non-negative number of seconds');
    this.#offsetMs += Math.round(seconds * 1000);
    return this.now();
  }
}
