import { InputError } from '../../src/errors.js';

/** Runs `fn` and returns the InputError it throws; any other outcome fails the test. */
export function inputErrorOf(fn: () => unknown): InputError {
  try {
    fn();
  } catch (err) {
    if (err instanceof InputError) return err;
    throw new Error(`expected an InputError, got: ${err instanceof Error ? err.stack : String(err)}`);
  }
  throw new Error('expected an InputError, but the inventory was accepted');
}
