import { performance } from 'node:perf_hooks';

/**
 * How commands print: results on stdout, as text for people or, with `--json`, as one JSON
 * document for scripts (snake_case keys, as the HTTP API); progress on stderr, only on a terminal.
 */
export function printResult(options: Record<string, unknown>, json: unknown, text: string): void {
  process.stdout.write(options.json === true ? `${JSON.stringify(json, null, 2)}\n` : `${text}\n`);
}

export interface Progress {
  /** Show `text` as the current state (at most every 100 ms: a terminal need not redraw faster). */
  update(text: string): void;
  /** Clear the line (again: nothing). */
  done(): void;
}

/** A progress line on stderr, redrawn in place; silent when stderr is not a terminal or with --json. */
export function progressLine(
  options: Record<string, unknown>,
  stream: NodeJS.WriteStream = process.stderr,
): Progress {
  if (stream.isTTY !== true || options.json === true)
    return { update: () => undefined, done: () => undefined };
  let drawnAt = Number.NEGATIVE_INFINITY;
  let drawn = false;
  return {
    update(text) {
      const now = performance.now();
      if (now - drawnAt < 100) return;
      drawnAt = now;
      drawn = true;
      stream.write(`\r${text}\x1b[K`);
    },
    done() {
      if (drawn) stream.write('\r\x1b[K');
      drawn = false;
    },
  };
}

/** A time as people read it (UTC, to the second), or `never`. */
export function when(ms: number | null): string {
  return ms === null ? 'never' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A time for JSON: ISO 8601, or null. */
export function isoOrNull(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}
