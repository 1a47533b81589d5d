import { isBehalfError } from '../errors.js';

/**
 * Runs a CLI action: a BehalfError becomes clear lines on stderr (one per problem: bad
 * configuration is reported all at once) and its exit status; anything else is reported by class
 * only (it may carry request details).
 */
export async function runAction(action: () => Promise<void>): Promise<void> {
  try {
    await action();
  } catch (error) {
    if (isBehalfError(error)) {
      process.stderr.write(
        error.message
          .split('\n')
          .map((line) => `behalf: ${line}\n`)
          .join(''),
      );
      process.exitCode = error.exitCode;
    } else {
      process.stderr.write(
        `behalf: unexpected ${(error as Error | undefined)?.name ?? 'error'}: ${(error as Error | undefined)?.message ?? ''}\n`,
      );
      process.exitCode = 70;
    }
  }
}
