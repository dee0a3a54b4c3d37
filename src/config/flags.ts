/**
 * Command-line flags as zod schemas. Commander hands flag values over as strings; these schemas
 * turn them into numbers and addresses with the shared parsers (src/shared/parse.ts), so a flag
 * and the config field it overrides accept the same text and fail with the same one-line message.
 *
 *   const f = parseFlags(clientFlagsSchema, flags);   // throws ParseError naming the flag
 */
import { z } from 'zod';
import {
  ParseError,
  parseHostPort,
  parseIntInRange,
  parsePort,
  parseSeconds,
  type HostPortOptions,
  type ParseErrorCode,
} from '../shared/parse.js';

/** A string flag value through one of the shared parsers; its ParseError becomes the issue. */
function via<T>(parse: (text: string) => T) {
  return z.string().transform((text, ctx): T => {
    try {
      return parse(text);
    } catch (err) {
      if (!(err instanceof ParseError)) throw err;
      ctx.addIssue({ code: 'custom', message: err.message, params: { code: err.code } });
      return z.NEVER;
    }
  });
}

/** Schemas for one flag each; `what` is the flag as the user typed it, e.g. "--port". */
export const flag = {
  port: (what: string, min: 0 | 1 = 0) => via((t) => parsePort(t, what, min)),
  int: (what: string, min: number, max: number) => via((t) => parseIntInRange(t, what, min, max)),
  seconds: (what: string, max?: number) => via((t) => parseSeconds(t, what, max)),
  hostPort: (what: string, opts: HostPortOptions) => via((t) => parseHostPort(t, what, opts)),
};

/** Validate commander's flags object; the first bad flag throws its ParseError (exit 2). */
export function parseFlags<S extends z.ZodType>(schema: S, flags: unknown): z.output<S> {
  const r = schema.safeParse(flags);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const code =
    (issue.code === 'custom' ? (issue.params?.code as ParseErrorCode | undefined) : undefined) ??
    'ERR_INTEGER';
  throw new ParseError(code, issue.message);
}
