import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { packageRoot } from '../shared/package-root.js';
import { NOT_FOUND_BODY } from './errors.js';

/**
 * The operator's dashboard (web/, built into web/dist by scripts/build-web.mjs), served under the
 * API's secret prefix: `<apiUrl>/` is the app, `<apiUrl>/assets/…` its hashed script and style.
 * Files are read from disk per request (nothing held in memory while nobody looks: managed idle
 * RSS), precompressed .br/.gz siblings are sent when the browser accepts them. Outside the prefix
 * these routes do not exist (buildApi's rewriteUrl), so a wrong prefix gets the usual 404.
 */

/** Where the built dashboard is: web/dist in the package (a checkout or an installed package). */
export function defaultDashboardDir(): string | undefined {
  const root = packageRoot()?.dir;
  return root === undefined ? undefined : join(root, 'web', 'dist');
}

/** Scripts and styles from this origin only; API calls to it; QR codes as data: images. */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
  '.svg': 'image/svg+xml',
};
/** Built asset names: name-HASH.ext (esbuild's [name]-[hash]); nothing else is served. */
const ASSET_NAME = /^[A-Za-z0-9_]+-[A-Z0-9]{8}\.(js|css|svg)$/;

function encodingsAccepted(req: FastifyRequest): { br: boolean; gzip: boolean } {
  const h = String(req.headers['accept-encoding'] ?? '').toLowerCase();
  const ok = (name: string): boolean =>
    h.split(',').some((part) => {
      const [token, ...params] = part.trim().split(';');
      if (token?.trim() !== name) return false;
      const q = params.map((p) => /^\s*q=([\d.]+)\s*$/.exec(p)?.[1]).find((v) => v !== undefined);
      return q === undefined || Number(q) > 0;
    });
  return { br: ok('br'), gzip: ok('gzip') };
}

async function readOptional(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch {
    return undefined;
  }
}

async function sendFile(
  req: FastifyRequest,
  reply: FastifyReply,
  path: string,
  ext: string,
  cache: string,
): Promise<FastifyReply | undefined> {
  const enc = encodingsAccepted(req);
  let body: Buffer | undefined;
  let encoding: string | undefined;
  if (enc.br && (body = await readOptional(`${path}.br`))) encoding = 'br';
  else if (enc.gzip && (body = await readOptional(`${path}.gz`))) encoding = 'gzip';
  else body = await readOptional(path);
  if (body === undefined) return undefined;
  if (encoding !== undefined) reply.header('content-encoding', encoding);
  return reply
    .header('content-type', TYPES[ext] ?? 'application/octet-stream')
    .header('cache-control', cache)
    .header('vary', 'accept-encoding')
    .header('content-security-policy', DASHBOARD_CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('x-frame-options', 'DENY')
    .send(body);
}

export function registerDashboard(app: FastifyInstance, dir: string | undefined): void {
  app.get('/', { schema: { hide: true } }, async (req, reply) => {
    // `<apiUrl>` without the slash: relative asset and API paths need the folder form.
    const original = req.originalUrl.split('?')[0] ?? '';
    if (!original.endsWith('/')) return reply.code(308).header('location', `${original}/`).send();
    if (dir === undefined) return reply.code(404).send(NOT_FOUND_BODY);
    const sent = await sendFile(req, reply, join(dir, 'index.html'), '.html', 'no-cache');
    return (
      sent ??
      reply
        .code(503)
        .header('content-type', 'text/plain; charset=utf-8')
        .send('The dashboard is not built: run `npm run build` in the Ladder checkout.\n')
    );
  });
  app.get<{ Params: { file: string } }>('/assets/:file', { schema: { hide: true } }, async (req, reply) => {
    const m = ASSET_NAME.exec(req.params.file);
    if (!m || dir === undefined) return reply.code(404).send(NOT_FOUND_BODY);
    const file = join(dir, 'assets', req.params.file);
    const sent = await sendFile(req, reply, file, `.${m[1]}`, 'public, max-age=31536000, immutable');
    return sent ?? reply.code(404).send(NOT_FOUND_BODY);
  });
}
