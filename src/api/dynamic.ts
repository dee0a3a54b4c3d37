import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { keyPrefixFor, outlinePrefixString } from '../protocol/shadowsocks/key-prefix.js';
import { evaluateKeys, type KeyState } from '../store/index.js';
import { NOT_FOUND_BODY } from './errors.js';
import type { ApiContext } from './context.js';

const JSON_UTF8 = 'application/json; charset=utf-8';

const REFUSAL: Record<Exclude<KeyState, 'active'>, string> = {
  disabled: 'Access key disabled',
  expired: 'Access key expired',
  over_limit: 'Quota exceeded',
};

/** A UUID-shaped id that stays the same for the same key (SIP008 clients keep settings by id). */
function stableUuid(seed: string): string {
  const h = createHash('sha256').update(seed).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function gib(n: number): string {
  return `${(n / 2 ** 30).toFixed(2)} GiB`;
}

/**
 * Dynamic access keys (ssconf://), served without the admin secret at /access/{token}:
 * Outline's dynamic-key JSON by default, SIP008 at /access/{token}/sip008 (or ?format=sip008).
 * When the key cannot be used, Outline's `error` object says why and the client shows it.
 * SIP004 keys whose salt has room carry a fresh Outline `prefix` on each fetch (key-prefix.ts).
 * Unknown tokens get the same 404 as every unknown path.
 */
export function registerDynamicRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const serve = async (
    token: string,
    format: 'outline' | 'sip008',
    reply: FastifyReply,
  ): Promise<unknown> => {
    const key = await ctx.store.findKeyByToken(token);
    if (!key) return reply.code(404).send(NOT_FOUND_BODY);
    const now = ctx.clock.now();
    // The enforcer's latest view (at most one interval old) decides, as it does for the data plane.
    const status =
      ctx.enforcer.statuses.find((s) => s.key.id === key.id) ??
      (await evaluateKeys(ctx.store, now)).find((s) => s.key.id === key.id);
    const settings = await ctx.store.getSettings();
    reply.header('content-type', JSON_UTF8).header('cache-control', 'no-store');
    if (!status) return reply.code(404).send(NOT_FOUND_BODY);
    if (format === 'sip008') {
      const body: Record<string, unknown> = {
        version: 1,
        servers:
          status.state === 'active'
            ? [
                {
                  id: stableUuid(`${settings.serverId}/${key.id}`),
                  remarks: key.name || settings.name,
                  server: settings.hostnameForAccessKeys,
                  server_port: key.port,
                  password: key.secret,
                  method: key.method,
                },
              ]
            : [],
      };
      if (status.limitBytes !== null) {
        body.bytes_used = status.usedBytes;
        body.bytes_remaining = Math.max(0, status.limitBytes - status.usedBytes);
      }
      return reply.code(200).send(body);
    }
    if (status.state !== 'active') {
      const details =
        status.state === 'over_limit' && status.limitBytes !== null
          ? `Used ${gib(status.usedBytes)} out of ${gib(status.limitBytes)}`
          : status.state === 'expired' && key.expiresAt !== null
            ? `Expired at ${new Date(key.expiresAt).toISOString()}`
            : undefined;
      return reply
        .code(200)
        .send({ error: { message: REFUSAL[status.state], ...(details ? { details } : {}) } });
    }
    // D1 for phones: an Outline `prefix` drawn afresh on every fetch (key-prefix.ts), so no
    // server has one fixed first-bytes signature; none for 2022 and aes-128-gcm keys.
    const prefix = keyPrefixFor(key.method);
    return reply.code(200).send({
      server: settings.hostnameForAccessKeys,
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
    (req, reply) => serve(req.params.token, req.query.format === 'sip008' ? 'sip008' : 'outline', reply),
  );
  app.get<{ Params: { token: string } }>('/access/:token/sip008', { schema: hide }, (req, reply) =>
    serve(req.params.token, 'sip008', reply),
  );
}
