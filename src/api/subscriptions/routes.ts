import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { apiEndpointOf, type ApiContext } from '../context.js';
import { fleetServers } from '../fleet.js';
import { NOT_FOUND_BODY } from '../errors.js';
import {
  base64List,
  clashYaml,
  placeholder,
  outlineJson,
  outlineYaml,
  singBoxJson,
  sip008Json,
  type Rendered,
} from './formats.js';
import { htmlPage } from './html.js';
import { xrayJson } from './xray.js';
import { pageLang } from './page-text.js';
import { buildSubscription, outlinePrefix, type Subscription } from './model.js';
import { negotiate } from './negotiate.js';
import { keyByToken, refusalOf } from './state.js';
import { SUB_FORMATS, subscriptionUrlVia, type SubFormat } from './url.js';

/** The formats that are one function of the subscription (and the Outline prefix). */
const RENDER: Record<
  Exclude<SubFormat, 'html'>,
  (sub: Subscription, prefix: Uint8Array | undefined) => Rendered | Promise<Rendered>
> = {
  outline: outlineYaml,
  'outline-json': outlineJson,
  clash: clashYaml,
  'sing-box': singBoxJson,
  sip008: sip008Json,
  base64: base64List,
  'v2ray-json': (sub) => xrayJson(sub, placeholder),
};

/** How often apps should re-fetch (hours; profile-update-interval). Short, so a moved server is found soon. */
export const UPDATE_INTERVAL_HOURS = 6;

/** The page may show inline SVG and style, and nothing else: no script, no request anywhere. */
const PAGE_CSP =
  "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'";

/** subscription-userinfo as Clash, sing-box apps, v2rayN and Shadowrocket read it (expire in seconds; 0 = none). */
export function userInfo(sub: Subscription): string {
  const expire = sub.expiresAt === null ? 0 : Math.floor(sub.expiresAt / 1000);
  return `upload=${sub.upload}; download=${sub.download}; total=${sub.limitBytes ?? 0}; expire=${expire}`;
}

/** ASCII file name for content-disposition, plus the UTF-8 one (RFC 6266 filename*). */
function disposition(title: string, ext: string, inline: boolean): string {
  const ascii =
    title
      .replace(/[^A-Za-z0-9._ -]/g, '')
      .trim()
      .slice(0, 60) || 'ladder';
  return `${inline ? 'inline' : 'attachment'}; filename="${ascii}.${ext}"; filename*=UTF-8''${encodeURIComponent(`${title}.${ext}`).replace(/['()*!]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}`;
}

/**
 * Subscriptions at /sub/{token} (format negotiated from User-Agent and Accept) and
 * /sub/{token}/{format}, served where the dynamic keys are (no admin secret: the token is the
 * secret). Unknown tokens and unknown formats get the same 404 as every unknown path.
 */
export function registerSubscriptionRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const serve = async (
    token: string,
    format: SubFormat,
    reply: FastifyReply,
    acceptLanguage: string | undefined,
  ): Promise<unknown> => {
    const found = await keyByToken(ctx, token);
    if (!found) return reply.code(404).send(NOT_FOUND_BODY);
    const { key, status } = found;
    const settings = await ctx.store.getSettings();
    const usage = (await ctx.store.usageSince(status.windowStart)).get(key.id);
    const sub = buildSubscription(
      key,
      status,
      settings,
      ctx.webEndpoint?.(),
      refusalOf(key, status),
      usage,
      await fleetServers(ctx),
      ctx.shadowTls?.(),
    );
    // PREFIX HOOK (see model.ts outlinePrefix): Outline has no 2022 ciphers, so SIP004 keys only.
    const prefix = key.method.startsWith('2022-') ? undefined : outlinePrefix(key, settings);
    let out: Rendered;
    if (format === 'html') {
      const outline = subscriptionUrlVia(key, settings, apiEndpointOf(ctx, settings), 'outline');
      out = {
        body: await htmlPage(
          sub,
          {
            subscription: subscriptionUrlVia(key, settings, apiEndpointOf(ctx, settings)),
            outline:
              outline && !key.method.startsWith('2022-')
                ? `${outline.replace(/^https?:\/\//, 'ssconf://')}#${encodeURIComponent(sub.title)}`
                : undefined,
            prefix,
          },
          pageLang(acceptLanguage),
        ),
        contentType: 'text/html; charset=utf-8',
        ext: 'html',
      };
    } else out = await RENDER[format](sub, prefix);
    reply
      .header('content-type', out.contentType)
      .header('cache-control', 'no-store')
      .header('subscription-userinfo', userInfo(sub))
      .header('profile-update-interval', String(UPDATE_INTERVAL_HOURS))
      .header('profile-title', `base64:${Buffer.from(sub.title, 'utf8').toString('base64')}`)
      .header('content-disposition', disposition(sub.title, out.ext, format === 'html'))
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer');
    const page = subscriptionUrlVia(key, settings, apiEndpointOf(ctx, settings), 'html');
    if (page) reply.header('profile-web-page-url', page);
    if (format === 'html')
      reply.header('content-security-policy', PAGE_CSP).header('x-robots-tag', 'noindex');
    return reply.code(200).send(out.body);
  };

  const hide = { hide: true };
  app.get<{ Params: { token: string } }>(
    '/sub/:token',
    { schema: hide },
    (req: FastifyRequest<{ Params: { token: string } }>, reply) => {
      // A cache (a CDN in front) must not hand one app's format to another.
      // The page's language follows Accept-Language.
      reply.header('vary', 'User-Agent, Accept, Accept-Language');
      const format = negotiate(req.headers['user-agent'], req.headers.accept);
      return serve(req.params.token, format, reply, req.headers['accept-language']);
    },
  );
  app.get<{ Params: { token: string; format: string } }>(
    '/sub/:token/:format',
    { schema: hide },
    (req, reply) => {
      const f = req.params.format;
      if (!(SUB_FORMATS as readonly string[]).includes(f)) return reply.code(404).send(NOT_FOUND_BODY);
      if (f === 'html') reply.header('vary', 'Accept-Language');
      return serve(req.params.token, f as SubFormat, reply, req.headers['accept-language']);
    },
  );
}
