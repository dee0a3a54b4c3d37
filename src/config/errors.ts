/**
 * Config file errors. Every one carries a stable code; messages are one line,
 * `FILE: field: what is wrong`, and never contain a password or key.
 */
import { escapeControls } from '../protocol/errors.js';

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
    // One line whatever a file's field names or values hold (a name with a newline in it).
    super(escapeControls(message));
    this.code = code;
  }
}

/** A problem in the client config file (`ladder client --config`). */
export class ClientConfigError extends ConfigError {
  override readonly name: string = 'ClientConfigError';
}

/**
 * Why a file cannot be read, in the words every command uses: "no such file", "permission
 * denied", "is a directory", else the system's code. Used as `<file>: <why>`.
 */
export function fileErrorWhy(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory, not a file';
    default:
      return `cannot read (${code ?? (err instanceof Error ? err.message : String(err))})`;
  }
}

/**
 * Where V8 did not say: the first occurrence of the unexpected token outside string literals
 * and the words true/false/null (V8 names the token but quotes the text instead of a position).
 */
function tokenOffset(text: string, token: string): number {
  // Structural tokens are only unexpected after certain others, where a value was due:
  // "[1,,2]", "{"a":}", "[1,]", "[ }" (V8 gives a position for the other misplacements).
  const badAfter: Record<string, string> = { ',': '[{,:', ']': ',:', '}': '[,:', ':': '[{,:' };
  const re = /"(?:[^"\\]|\\.)*"|\b(?:true|false|null)\b|[^\s]|\s/g;
  // Whitespace is unexpected only inside a bare word ("tru\ne"): right after a letter.
  const space = /^\s$/.test(token);
  let prev = '';
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const after = badAfter[token];
    if (space) {
      if (m[0] === token && /^[A-Za-z]$/.test(prev)) return m.index;
    } else if (m[0] === token && (after === undefined || prev === '' || after.includes(prev))) return m.index;
    if (!/^\s$/.test(m[0])) prev = m[0].length === 1 ? m[0] : 'v';
    else if (space) prev = '';
  }
  return text.length;
}

/**
 * A JSON.parse failure as `line L, column C: <what>` (1-based), in the words every command
 * uses; never quotes the text (config files hold passwords), which V8's message sometimes does.
 */
export function jsonErrorWhere(text: string, err: unknown): string {
  // Nothing at all: what a failed `curl … > file` leaves (a self-signed API, a wrong URL).
  if (text.trim() === '') return 'the file is empty';
  const msg = err instanceof Error ? err.message : String(err);
  const pos = /at position (\d+)/.exec(msg);
  const token = /^Unexpected token '([\s\S])'/.exec(msg);
  const offset = pos ? Number(pos[1]) : token ? tokenOffset(text, token[1]!) : text.length;
  let what = msg
    .replace(/\s*in JSON at position \d+.*$/s, '')
    .replace(/^(Unexpected token '.'),.*$/s, '$1')
    .replace(/^Unexpected end of JSON input$/, 'unexpected end of the file');
  what = what.charAt(0).toLowerCase() + what.slice(1);
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const col = before.length - before.lastIndexOf('\n');
  return `line ${line}, column ${col}: ${what}`;
}
