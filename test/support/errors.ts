import { expect } from 'vitest';
import { BehalfError } from '../../src/errors.js';

/** The BehalfError `promise` rejects with; fails the test when it resolves or rejects with anything else. */
export async function errorOf(promise: Promise<unknown>): Promise<BehalfError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(BehalfError);
  return error as BehalfError;
}
