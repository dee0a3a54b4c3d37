import { isLogLevel, LOG_LEVELS, type LogLevel } from '../shared/logger.js';
import { UsageError } from './errors.js';

/** The level from --log-level, else LADDER_LOG_LEVEL, else info; anything else is a usage error. */
export function logLevelFrom(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): LogLevel {
  const level = flag ?? (env.LADDER_LOG_LEVEL || 'info');
  if (isLogLevel(level)) return level;
  const from = flag !== undefined ? '--log-level' : 'LADDER_LOG_LEVEL';
  throw new UsageError(`${from} must be one of ${LOG_LEVELS.join(', ')}, got "${level}"`);
}
