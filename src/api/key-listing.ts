/**
 * GET /access-keys without the memory spike (issue 14): the listing is read from the store in
 * keyset pages and written to the reply a page at a time (with the stream's backpressure), and
 * each rendered page is shared by every listing that asks for it while it is fresh: the keys and
 * settings unchanged since (the store's keysVersion) and at most PAGE_TTL_MS old (what moves
 * without a key change: enforcement state, usage, last-traffic times and a device-limited key's
 * devices in use). So N concurrent full
 * listings render each page about once and hold about one page each, not N copies of every key.
 *
 * The JSON is byte for byte what the Outline-shaped route rendered before, each key through the
 * same zod schema the response serializer used: `{"accessKeys":[…]}`. `?limit=` and `?after=` (a
 * Ladder extension Outline clients never send) return one page plus `next`, an opaque cursor.
 * `?fields=` (also an extension) keeps only the named fields of each key (the dashboard's table
 * takes its status and usage columns, not the secrets and URLs); the route compresses the bytes
 * when the client accepts it (compress.ts).
 */
import { Readable } from 'node:stream';
import type { KeyCursor } from '../store/index.js';
import { apiEndpointOf, devicesInUseOf, statusIndex, toAccessKeyJson, type ApiContext } from './context.js';
import { invalid } from './errors.js';
import { AccessKey } from './schemas.js';

/** Keys per page of a full listing. */
export const PAGE_KEYS = 500;
/** The largest `limit` a paginated request may ask for. */
export const MAX_LIMIT = 1000;
/** How long a rendered page may be shared when no key or setting changed. */
export const PAGE_TTL_MS = 1000;
/** Rendered pages kept at most (a few MB at 500 keys a page). */
const MAX_PAGES = 32;
/** A full listing stops after this many pages (5 million keys): every loop has a bound. */
const MAX_STREAM_PAGES = 10_000;

/** A full listing is written in slices of at most this many bytes (views of the shared page). */
const SLICE_BYTES = 32 * 1024;

/** The fields `?fields=` may name (AccessKey's); `id` is always kept. */
const FIELDS: ReadonlySet<string> = new Set(Object.keys(AccessKey.shape));

/** `fields` as a sorted list of AccessKey fields with `id`, or a 400 naming the field. */
export function parseFields(text: string | undefined): readonly string[] | undefined {
  if (text === undefined) return undefined;
  const names = new Set(['id']);
  for (const name of text.split(',', FIELDS.size + 1)) {
    if (!FIELDS.has(name)) {
      throw invalid('fields', `Invalid "fields": expected names of access key fields separated by commas`);
    }
    names.add(name);
  }
  return [...names].sort();
}

/** One rendered page: the keys' JSON joined by commas, without the brackets, as UTF-8. */
export interface RenderedPage {
  readonly body: Buffer;
  readonly count: number;
  readonly next: KeyCursor | undefined;
}

export function encodeCursor(c: KeyCursor): string {
  return Buffer.from(`${c.seq}:${c.id}`).toString('base64url');
}

/** The cursor in `after`, or a 400 naming the field. */
export function decodeCursor(text: string): KeyCursor {
  const bad = (): never => {
    throw invalid('after', 'Invalid "after": not a cursor from a previous page\'s "next"');
  };
  if (!/^[A-Za-z0-9_-]{1,400}$/.test(text)) bad();
  const raw = Buffer.from(text, 'base64url').toString();
  const m = /^(\d{1,15}):(.{1,128})$/s.exec(raw);
  if (!m || encodeCursor({ seq: Number(m[1]), id: m[2]! }) !== text) return bad();
  return { seq: Number(m[1]), id: m[2]! };
}

/** `limit` as a page size, or a 400 naming the field. */
export function parseLimit(text: string | undefined): number {
  if (text === undefined) return PAGE_KEYS;
  const n = /^\d{1,4}$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= MAX_LIMIT)) {
    throw invalid('limit', `Invalid "limit": expected an integer from 1 to ${MAX_LIMIT}`);
  }
  return n;
}

export class KeyListing {
  readonly #ctx: ApiContext;
  readonly #pages = new Map<string, { version: number; at: number; page: Promise<RenderedPage> }>();

  constructor(ctx: ApiContext) {
    this.#ctx = ctx;
  }

  /** Up to `limit` keys after `after`, rendered, shared with concurrent askers while fresh. */
  page(limit: number, after?: KeyCursor, fields?: readonly string[]): Promise<RenderedPage> {
    const id = `${limit}\n${after === undefined ? '' : encodeCursor(after)}\n${fields?.join(',') ?? ''}`;
    const version = this.#ctx.store.keysVersion;
    const now = this.#ctx.clock.now();
    const fresh = (e: { version: number; at: number }): boolean =>
      e.version === version && now - e.at < PAGE_TTL_MS;
    const hit = this.#pages.get(id);
    if (hit && fresh(hit)) return hit.page;
    for (const [k, e] of this.#pages) if (!fresh(e)) this.#pages.delete(k);
    // The version is taken before the read: a change committed during it makes the page stale.
    const page = this.#render(limit, after, fields);
    this.#pages.set(id, { version, at: now, page });
    page.catch(() => {
      if (this.#pages.get(id)?.page === page) this.#pages.delete(id);
    });
    for (const k of this.#pages.keys()) {
      if (this.#pages.size <= MAX_PAGES) break;
      this.#pages.delete(k); // the oldest first (insertion order)
    }
    return page;
  }

  async #render(
    limit: number,
    after: KeyCursor | undefined,
    fields: readonly string[] | undefined,
  ): Promise<RenderedPage> {
    const { store, enforcer } = this.#ctx;
    const [{ keys, next }, settings] = await Promise.all([
      store.listKeysPage(limit, after),
      store.getSettings(),
    ]);
    const statuses = statusIndex(enforcer);
    const web = this.#ctx.webEndpoint?.();
    const stls = this.#ctx.shadowTls?.();
    const devices = devicesInUseOf(this.#ctx);
    const body = keys
      .map((k) => {
        const json = toAccessKeyJson(
          k,
          settings,
          statuses.get(k.id),
          apiEndpointOf(this.#ctx, settings),
          web,
          stls,
          devices,
        );
        // The schema's encoding changes none of the values, only which fields and their order:
        // a few named fields are picked without it (a third of the cost; the test compares).
        return JSON.stringify(fields === undefined ? AccessKey.encode(json) : pick(json, fields));
      })
      .join(',');
    return { body: Buffer.from(body), count: keys.length, next };
  }

  /** One page as a paginated response: `{"accessKeys":[…],"next":"…"}` (`next` absent at the end). */
  async pageJson(limit: number, after?: KeyCursor, fields?: readonly string[]): Promise<string> {
    const p = await this.page(limit, after, fields);
    const next = p.next === undefined ? '' : `,"next":${JSON.stringify(encodeCursor(p.next))}`;
    return `{"accessKeys":[${p.body.toString()}]${next}}`;
  }

  /**
   * The full listing as a byte stream, a page at a time: the next page is read only when the
   * reply has taken the previous one, and a page goes out in slices that are views of the shared
   * page (each listing holds a slice in flight, not a copy of its page). The first page is read
   * before anything is sent, so a store error there is still an ordinary error response; a later
   * one ends the reply unfinished.
   */
  async stream(fields?: readonly string[]): Promise<Readable> {
    const first = await this.page(PAGE_KEYS, undefined, fields);
    const pages = async function* (this: KeyListing): AsyncGenerator<Buffer> {
      yield Buffer.from('{"accessKeys":[');
      yield* slices(first.body);
      let written = first.count;
      let next = first.next;
      for (let i = 0; next !== undefined && i < MAX_STREAM_PAGES; i++) {
        const p = await this.page(PAGE_KEYS, next, fields);
        if (p.count > 0 && written > 0) yield Buffer.from(',');
        yield* slices(p.body);
        written += p.count;
        next = p.next;
      }
      yield Buffer.from(']}');
    }.call(this);
    return Readable.from(pages, { objectMode: false });
  }
}

function pick(full: object, fields: readonly string[]): Record<string, unknown> {
  const from = full as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const f of fields) if (from[f] !== undefined) out[f] = from[f];
  return out;
}

function* slices(buf: Buffer): Generator<Buffer> {
  for (let at = 0; at < buf.length; at += SLICE_BYTES) yield buf.subarray(at, at + SLICE_BYTES);
}
