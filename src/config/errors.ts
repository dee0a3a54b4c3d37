/**
 * Config file errors. Every one carries a stable code; messages are one line,
 * `FILE: field: what is wrong`, and never contain a password or key.
 */
export type ConfigErrorCode =
  | 'ERR_CONFIG_READ' // the file cannot be read (missing, permissions)
  | 'ERR_CONFIG_JSON' // not valid JSON, or not a JSON object
  | 'ERR_CONFIG_FIELD'; // a field is missing, unknown or has a wrong value

/** A problem in the server config file (`ladder server --config`). */
export class ConfigError extends Error {
  override readonly name: string = 'ConfigError';
  readonly code: ConfigErrorCode;

  constructor(
    message: string,
    /** The field path, e.g. `keys[1].method`; empty for whole-file problems. */
    readonly path: string,
    code: ConfigErrorCode = path === '' ? 'ERR_CONFIG_JSON' : 'ERR_CONFIG_FIELD',
  ) {
    super(message);
    this.code = code;
  }
}

/** A problem in the client config file (`ladder client --config`). */
export class ClientConfigError extends ConfigError {
  override readonly name: string = 'ClientConfigError';
}
