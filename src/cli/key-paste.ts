/**
 * The ways a pasted access key goes wrong before it is a key at all: nothing was pasted (a shell
 * variable that was never set), the quotes came along, the README's shortened `ss://…` was copied,
 * or the start of the key was cut off. The URL parser would call these "scheme must be ss://" or
 * a "legacy base64 body"; this says what happened instead. Never echoes any of the key.
 */
import { UsageError } from './errors.js';

/** What is wrong with a pasted key, as words to follow its name (`--key …`), or undefined. */
export function keyPasteProblem(text: string): string | undefined {
  const t = text.trim();
  if (t === '') return 'is empty (a shell variable that held no key?): give the ss:// key the server printed';
  // The #name after the key is free text (a dot, a quote): the checks below read what precedes it.
  const hash = t.indexOf('#');
  const body = hash < 0 ? t : t.slice(0, hash);
  if (/^["'`<\u201c\u2018]/.test(t) || /["'`>\u201d\u2019]$/.test(body))
    return 'starts or ends with a quote or bracket that is not part of the key: give the key without it';
  if (body.includes('…') || body.includes('...'))
    return 'holds "…", a key shortened as the README shows one: give the whole key the server printed';
  if (!t.includes('://')) {
    return /^ss:/i.test(t)
      ? 'starts with "ss:" but not "ss://": give the whole key the server printed'
      : 'does not start with ss:// (or ssconf://, https://): the start of the key was not copied?';
  }
  return undefined;
}

/** The key, unless it is a paste gone wrong: then one line naming `what` (--key, LADDER_KEY, file: keys[0]). */
export function pastedKey(what: string, key: string): string {
  const problem = keyPasteProblem(key);
  if (problem !== undefined) throw new UsageError(`${what} ${problem}`, 'ERR_INPUT');
  return key;
}
