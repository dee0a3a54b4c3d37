/**
 * Compression of the large JSON answers (the key listing): brotli or gzip, chosen from the
 * request's accept-encoding, streamed (a page compressed as it is written, never the whole body
 * held). A client that sends no accept-encoding (Outline Manager, scripts) gets the plain bytes
 * exactly as before; the decompressed bytes are always the plain ones.
 */
import { Readable, pipeline } from 'node:stream';
import { constants, createBrotliCompress, createGzip } from 'node:zlib';
import type { FastifyReply, FastifyRequest } from 'fastify';

export type Encoding = 'br' | 'gzip';

/** Bodies shorter than this go out plain (compression would not pay for its framing). */
export const MIN_COMPRESS_BYTES = 1024;
/** Brotli quality for streaming: 4 compresses JSON about as well as gzip -9 at gzip -1's speed. */
const BROTLI_QUALITY = 4;

/** The encoding to use for an accept-encoding header: br, else gzip, else none (q=0 refuses). */
export function chooseEncoding(accept: string | undefined): Encoding | undefined {
  if (!accept) return undefined;
  const ok = new Set<string>();
  for (const part of accept.split(',').slice(0, 32)) {
    const [name = '', ...params] = part.trim().toLowerCase().split(';');
    const q = params.map((p) => /^\s*q=([\d.]+)\s*$/.exec(p)?.[1]).find((v) => v !== undefined);
    if (q === undefined || Number(q) > 0) ok.add(name.trim());
  }
  if (ok.has('br')) return 'br';
  if (ok.has('gzip') || ok.has('x-gzip')) return 'gzip';
  return undefined;
}

function compressor(encoding: Encoding) {
  return encoding === 'br'
    ? createBrotliCompress({
        params: {
          [constants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY,
          [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
        },
      })
    : createGzip({ level: 6 });
}

/**
 * Send JSON (a string or a byte stream) compressed when the client accepts it. An error in the
 * source ends the reply unfinished, as it would uncompressed.
 */
export function sendJson(req: FastifyRequest, reply: FastifyReply, body: string | Readable): FastifyReply {
  reply.type('application/json; charset=utf-8').header('vary', 'accept-encoding');
  const encoding = chooseEncoding(req.headers['accept-encoding']);
  if (encoding === undefined || (typeof body === 'string' && Buffer.byteLength(body) < MIN_COMPRESS_BYTES))
    return reply.send(body);
  const source = typeof body === 'string' ? Readable.from([Buffer.from(body)]) : body;
  const out = compressor(encoding);
  pipeline(source, out, () => undefined); // on error both are destroyed: the reply ends unfinished
  return reply.header('content-encoding', encoding).send(out);
}
