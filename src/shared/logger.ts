import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/**
 * Paths pino blanks out wherever they appear. Privacy rule: no destination, client address,
 * password, secret or access URL is ever logged at the default level; these redactions are the
 * backstop for code that logs an object carelessly.
 */
export const REDACT_PATHS = [
  'password',
  'secret',
  'key',
  'accessUrl',
  'url',
  'destination',
  'remoteAddress',
  'clientAddress',
  '*.password',
  '*.secret',
  '*.key',
  '*.accessUrl',
  '*.url',
  '*.destination',
  '*.remoteAddress',
  '*.clientAddress',
  'req.headers.authorization',
];

export interface LoggerConfig {
  level?: string;
  /** Write to this destination instead of stdout (tests capture logs this way). */
  destination?: NodeJS.WritableStream;
}

export function createLogger(cfg: LoggerConfig = {}): Logger {
  const opts: LoggerOptions = {
    // The CLI resolves --log-level / LADDER_LOG_LEVEL; an empty value means the default.
    level: cfg.level || 'info',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: null,
  };
  return cfg.destination ? pino(opts, cfg.destination as never) : pino(opts, pino.destination(2));
}

/** A logger that discards everything (library default when the caller passes none). */
export const silentLogger: Logger = pino({ level: 'silent' });
