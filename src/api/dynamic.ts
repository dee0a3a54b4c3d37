import type { FastifyInstance, FastifyReply } from 'fastify';
import { outlinePrefixString } from '../protocol/shadowsocks/key-prefix.js';
import { keyPrefix } from './access-url.js';
import { NOT_FOUND_BODY } from './errors.js';
import type { ApiContext } from './context.js';
import { registerSubscriptionRoutes } from './subscriptions/routes.js';
import { outlineRefusal, outlineYaml, sip008Doc } from './subscriptions/formats.js';
import { negotiate } from './subscriptions/negotiate.js';
import { buildSubscription } from './subscriptions/model.js';
import { keyByToken, refusalOf } from './subscriptions/state.js';
import { fleetServers } from './fleet.js';
import { registerReportRoute } from './address-reports.js';

const JSON_UTF8 = 'application/json; charset=utf-8';

/**
 * Dynamic access keys (ssconf://), served without the admin secret at /access/{token}:
 * Outline's dynamic-key JSON by default, SIP008 at /access/{token}/sip008 (or ?format=sip008).
 * When the key cannot be used, Outline's `error` object says why and the client shows it; so it
 * does to Outline's apps (by User-Agent) for a 2022 key, whose cipher they do not have. SIP008
 * lists the raw servers, then the ShadowTLS ports (plugin shadow-tls, the key's own password);
 * Outline's JSON has no room for ShadowTLS: the raw server only (docs/api.md says so).
 * SIP004 keys whose salt has room carry the key's Outline `prefix` (auto: a fresh one per fetch).
 * Unknown tokens get the same 404 as every unknown path.
 */
export function registerDynamicRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const serve = async (
    token: string,
    format: 'outline' | 'sip008',
    reply: FastifyReply,
    userAgent?: string,
  ): Promise<unknown> => {
    const found = await keyByToken(ctx, token);
    if (!found) return reply.code(404).send(NOT_FOUND_BODY);
    const { key, status } = found;
    const settings = await ctx.store.getSettings();
    reply.header('content-type', JSON_UTF8).header('cache-control', 'no-store');
    const refusal = refusalOf(key, status);
    // On a fleet node: the listed nodes' raw entries (draining, blocked and down nodes are left
    // out, so clients move at their next fetch); else this server as configured.
    const fleet = (await fleetServers(ctx))?.map((s) => ({ ...s, web: undefined }));
    // With --advertise web the web front alone: the raw host:port is the origin a CDN hides.
    const web = ctx.webEndpoint?.();
    const only = web?.only ? web : undefined;
    const sub = buildSubscription(key, status, settings, only, refusal, undefined, fleet, ctx.shadowTls?.());
    // The raw servers (the subscription's SIP008 adds the web front's), same id and figures, then
    // the ShadowTLS ports: clients that take the first server keep the raw one.
    if (format === 'sip008') {
      const ordered = [...sub.entries.filter((e) => !e.stls), ...sub.entries.filter((e) => e.stls)];
      return reply.code(200).send(sip008Doc({ ...sub, entries: ordered }));
    }
    if (refusal) return reply.code(200).send({ error: refusal });
    // Outline's apps have no 2022 cipher: the JSON would fail in them with a parse error; they show this.
    if (key.method.startsWith('2022-') && negotiate(userAgent, undefined) === 'outline')
      return reply.code(200).send({ error: outlineRefusal(sub) });
    // D1 for phones: the key's Outline `prefix` setting; 'auto' draws afresh on every fetch
    // (key-prefix.ts), so no server has one fixed first-bytes signature; none for 'off', 2022 and
    // aes-128-gcm keys; a pinned one as pinned.
    const prefix = keyPrefix(key);
    if (!sub.raw) {
      // Web only: Outline's YAML config (its apps read YAML dynamic keys) with the WebSocket endpoint.
      const out = await outlineYaml(sub, prefix);
      return reply.code(200).header('content-type', out.contentType).send(out.body);
    }
    return reply.code(200).send({
      server: sub.raw?.host ?? settings.hostnameForAccessKeys,
      server_port: key.port,
      method: key.method,
      password: key.secret,
      ...(prefix ? { prefix: outlinePrefixString(prefix) } : {}),
    });
  };

  const hide = { hide: true };
  app.get<{ Params: { token: string }; Querystring: { format?: string } }>(
    '/access/:token',
    { schema: hide },
    (req, reply) =>
      serve(
        req.params.token,
        req.query.format === 'sip008' ? 'sip008' : 'outline',
        reply,
        req.headers['user-agent'],
      ),
  );
  app.get<{ Params: { token: string } }>('/access/:token/sip008', { schema: hide }, (req, reply) =>
    serve(req.params.token, 'sip008', reply),
  );
  registerSubscriptionRoutes(app, ctx);
  registerReportRoute(app, ctx);
}
