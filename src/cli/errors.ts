/** A mistake in what the user typed or wrote in a config file: printed as one line, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
