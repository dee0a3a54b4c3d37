/**
 * Text from other people (key names set through the API, file names) printed to the operator's
 * terminal: control characters are shown escaped, so a name cannot move the cursor, recolour or
 * clear the screen, hide itself, or start a new line that looks like ladder's own output.
 */

/** C0 and C1 controls, DEL, line/paragraph separators and bidirectional overrides. */
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** What JSON.stringify leaves raw (it escapes C0 controls itself; its own newlines must stay). */
const UNSAFE_IN_JSON = /[\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\u001b': '\\e' };

/** `text` with every unsafe character written as \n, \r, \t, \e, \xHH or \u{HHHH}. */
export function printable(text: string): string {
  return text.replace(UNSAFE, (c) => {
    const named = NAMED[c];
    if (named) return named;
    const cp = c.codePointAt(0)!;
    return cp <= 0xff ? `\\x${cp.toString(16).padStart(2, '0')}` : `\\u{${cp.toString(16)}}`;
  });
}

/** JSON for a terminal: JSON.stringify escapes C0 controls; this also escapes DEL, C1 and bidi marks. */
export function printableJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(
    UNSAFE_IN_JSON,
    (c) => `\\u${c.codePointAt(0)!.toString(16).padStart(4, '0')}`,
  );
}
