/**
 * Test lists: the citizenlab CSV format (`url,category_code,category_description,date_added,
 * source,notes`, RFC 4180 quoting) or plain text, one URL a line (`#` comments). We do not bundle
 * lists (citizenlab's licence is non-commercial); the user brings one.
 */
import type { ListEntry } from './run.js';

export class ListError extends Error {
  override readonly name = 'ListError';
}

/** RFC 4180 rows: quoted fields may hold commas, doubled quotes and newlines. */
function* csvRows(text: string, where: string): Generator<{ line: number; fields: string[] }> {
  let i = 0;
  let line = 1;
  while (i < text.length) {
    const start = line;
    const fields: string[] = [];
    let field = '';
    for (;;) {
      if (text[i] === '"') {
        i++;
        for (;;) {
          if (i >= text.length) throw new ListError(`${where}:${start}: unterminated quoted field`);
          if (text[i] === '"') {
            if (text[i + 1] === '"') {
              field += '"';
              i += 2;
              continue;
            }
            i++;
            break;
          }
          if (text[i] === '\n') line++;
          field += text[i++];
        }
        if (i < text.length && text[i] !== ',' && text[i] !== '\n' && text[i] !== '\r')
          throw new ListError(`${where}:${start}: text after a closing quote`);
      } else {
        while (i < text.length && text[i] !== ',' && text[i] !== '\n' && text[i] !== '\r') field += text[i++];
      }
      fields.push(field);
      field = '';
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === '\r') i++;
      if (text[i] === '\n') {
        i++;
        line++;
      }
      break;
    }
    yield { line: start, fields };
  }
}

const CATEGORY = /^[A-Z][A-Z0-9_]{0,15}$/;

/** True when a `--list` item is a URL (any scheme, so `ftp://x` is refused as a URL, not looked up as a file). */
export const isUrlItem = (item: string): boolean => /^[a-z][a-z0-9+.-]*:\/\//i.test(item.trim());

/** One URL given on the command line; `where` names the flag in errors ("--list"). */
export function parseUrlItem(item: string, where: string): ListEntry {
  return { url: checkUrl(item.trim(), where) };
}

function checkUrl(raw: string, where: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ListError(`${where}: not a URL: ${JSON.stringify(raw.slice(0, 80))}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new ListError(`${where}: only http and https URLs can be measured (got ${u.protocol})`);
  return u.href;
}

/** Parse a list file's text. `where` names it in errors ("list.csv"). */
export function parseList(text: string, where: string): ListEntry[] {
  const body = text.replace(/^\uFEFF/, '');
  const firstLine = body
    .slice(0, body.search(/\r?\n|$/))
    .trim()
    .toLowerCase();
  if (!firstLine.startsWith('url,')) {
    const out: ListEntry[] = [];
    for (const [n, l] of body.split(/\r?\n/).entries()) {
      const t = l.trim();
      if (t === '' || t.startsWith('#')) continue;
      out.push({ url: checkUrl(t, `${where}:${n + 1}`) });
    }
    return out;
  }
  const out: ListEntry[] = [];
  let header: string[] | undefined;
  for (const { line, fields } of csvRows(body, where)) {
    if (!header) {
      header = fields.map((f) => f.trim().toLowerCase());
      if (!header.includes('category_code'))
        throw new ListError(`${where}:1: a citizenlab list needs the columns url,category_code,…`);
      continue;
    }
    if (fields.length === 1 && fields[0]!.trim() === '') continue;
    if (fields.length !== header.length)
      throw new ListError(`${where}:${line}: ${fields.length} fields where the header has ${header.length}`);
    const get = (name: string): string => fields[header!.indexOf(name)]?.trim() ?? '';
    const code = get('category_code').toUpperCase();
    // Unknown or new categories are kept as given (the lists grow); only nonsense is refused.
    if (code !== '' && !CATEGORY.test(code))
      throw new ListError(`${where}:${line}: bad category_code ${JSON.stringify(code.slice(0, 20))}`);
    out.push({ url: checkUrl(get('url'), `${where}:${line}`), category: code || 'MISC' });
  }
  return out;
}
