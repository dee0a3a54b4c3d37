import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { createAccessKeys, evaluateKeys, nextReset, ROLLING_WINDOW_MS } from '../store/index.js';
import { ApiError, invalid, keyNotFound } from './errors.js';
import {
  checkMethod,
  checkPrefix,
  newExpiry,
  secretsFor,
  apiEndpointOf,
  statusIndex,
  toAccessKeyJson,
  type ApiContext,
  devicesInUseOf,
} from './context.js';
import {
  AccessKeyList,
  BulkActionBody,
  BulkActionResult,
  BulkCreateBody,
  DeviceLimitBody,
  DynamicBaseBody,
  EnabledBody,
  ErrorBody,
  ExpiryBody,
  IdParams,
  KeyUsage,
  PrefixBody,
  ReportSettings,
  SpeedLimitBody,
} from './schemas.js';

/** A 404 naming the unknown ids (the first few of them and how many). */
function keysNotFound(missing: readonly string[]): ApiError {
  const named = missing
    .slice(0, 5)
    .map((id) => JSON.stringify(id))
    .join(', ');
  const more = missing.length > 5 ? ` and ${missing.length - 5} more` : '';
  return new ApiError(
    404,
    'NotFoundError',
    `No access key found with id ${named}${more}; nothing was changed`,
    'ids',
  );
}

const NoContent = z.undefined().meta({ description: 'Done' });
const tags = ['Ladder extensions'];

/**
 * What Outline lacks, under the same secret prefix: expiry, enable/disable, recurring quotas
 * (the `period` field of PUT /access-keys/{id}/data-limit), bulk creation and per-key usage.
 */
export function registerLadderRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { store } = ctx;

  r.put(
    '/access-keys/:id/expiry',
    {
      schema: {
        tags,
        description: 'Sets when the key stops working (ISO 8601 or ms since the epoch)',
        params: IdParams,
        body: ExpiryBody,
        response: { 204: NoContent, 400: ErrorBody, 404: ErrorBody },
      },
    },
    async (req, reply) => {
      const expiresAt = newExpiry(ctx, req.body.expiresAt, req.body.allowPastExpiry)!;
      if (!(await store.updateKey(req.params.id, { expiresAt }))) throw keyNotFound(req.params.id);
      await ctx.enforcer.refresh();
      return reply.code(204).send();
    },
  );

  r.delete(
    '/access-keys/:id/expiry',
    {
      schema: {
        tags,
        description: 'Removes the expiry time',
        params: IdParams,
        response: { 204: NoContent, 404: ErrorBody },
      },
    },
    async (req, reply) => {
      if (!(await store.updateKey(req.params.id, { expiresAt: null }))) throw keyNotFound(req.params.id);
      await ctx.enforcer.refresh();
      return reply.code(204).send();
    },
  );

  r.put(
    '/server/blocked-address-reports',
    {
      schema: {
        tags,
        description:
          'Sets blocked-address detection (fleet-wide): `keys` distinct keys reporting an address within `windowSeconds` mark it suspected',
        body: ReportSettings,
        response: { 204: NoContent, 400: ErrorBody },
      },
    },
    async (req, reply) => {
      await store.updateSettings({ reportKeys: req.body.keys, reportWindowSeconds: req.body.windowSeconds });
      return reply.code(204).send();
    },
  );

  r.put(
    '/server/dynamic-key-base-url',
    {
      schema: {
        tags,
        description: 'Sets where ssconf:// dynamic keys point (e.g. a proxy with a real certificate)',
        body: DynamicBaseBody,
        response: { 204: NoContent, 400: ErrorBody },
      },
    },
    async (req, reply) => {
      await store.updateSettings({
        dynamicKeyBaseUrl: req.body.url === null ? null : req.body.url.replace(/\/+$/, ''),
      });
      return reply.code(204).send();
    },
  );

  r.put(
    '/access-keys/:id/enabled',
    {
      schema: {
        tags,
        description: 'Enables or disables a key without deleting it',
        params: IdParams,
        body: EnabledBody,
        response: { 204: NoContent, 400: ErrorBody, 404: ErrorBody },
      },
    },
    async (req, reply) => {
      if (!(await store.updateKey(req.params.id, { enabled: req.body.enabled })))
        throw keyNotFound(req.params.id);
      await ctx.enforcer.refresh();
      return reply.code(204).send();
    },
  );

  r.put(
    '/access-keys/:id/prefix',
    {
      schema: {
        tags,
        description:
          'Sets the Outline salt prefix of a SIP004 key: "auto" (fresh per dynamic-key fetch), "off", or pinned bytes (hex or Outline\'s URL-escaped string)',
        params: IdParams,
        body: PrefixBody,
        response: { 204: NoContent, 400: ErrorBody, 404: ErrorBody },
      },
    },
    async (req, reply) => {
      const key = await store.getKey(req.params.id);
      if (!key) throw keyNotFound(req.params.id);
      const prefix = checkPrefix(key.method, req.body.prefix);
      if (!(await store.updateKey(key.id, { prefix }))) throw keyNotFound(req.params.id);
      return reply.code(204).send();
    },
  );

  // Device and speed limits (docs/limits.md): PUT sets, DELETE removes; the enforcer hands the
  // change to the data plane (and the store's change feed to every fleet node).
  const limitRoutes = [
    ['device-limit', 'deviceLimit', DeviceLimitBody, 'a device limit (client addresses at once)'],
    ['speed-limit', 'speedLimit', SpeedLimitBody, 'a speed limit (bytes per second, each way)'],
  ] as const;
  for (const [path, field, body, what] of limitRoutes) {
    r.put(
      `/access-keys/:id/${path}`,
      {
        schema: {
          tags,
          description: `Sets ${what} on the given access key`,
          params: IdParams,
          body,
          response: { 204: NoContent, 400: ErrorBody, 404: ErrorBody },
        },
      },
      async (req, reply) => {
        const limit = req.body.limit;
        const value = 'devices' in limit ? limit.devices : limit.bytesPerSecond;
        if (!(await store.updateKey(req.params.id, { [field]: value }))) throw keyNotFound(req.params.id);
        await ctx.enforcer.refresh();
        return reply.code(204).send();
      },
    );
    r.delete(
      `/access-keys/:id/${path}`,
      {
        schema: {
          tags,
          description: `Removes the ${path.replace('-', ' ')} of the given access key`,
          params: IdParams,
          response: { 204: NoContent, 404: ErrorBody },
        },
      },
      async (req, reply) => {
        if (!(await store.updateKey(req.params.id, { [field]: null }))) throw keyNotFound(req.params.id);
        await ctx.enforcer.refresh();
        return reply.code(204).send();
      },
    );
  }

  r.post(
    '/access-keys/bulk',
    {
      schema: {
        tags,
        description: 'Creates up to 1000 keys in one transaction',
        body: BulkCreateBody,
        response: { 201: AccessKeyList, 400: ErrorBody },
      },
    },
    async (req, reply) => {
      const b = req.body;
      const method = checkMethod(ctx, b.method);
      const { makeSecret } = await secretsFor(ctx, { method, multiUser: b.multiUser });
      const { keys, settings } = await createAccessKeys(store, {
        method,
        makeSecret,
        count: b.count,
        name: b.name,
        dataLimitBytes: b.limit?.bytes,
        limitPeriod: b.dataLimitPeriod,
        expiresAt: newExpiry(ctx, b.expiresAt, b.allowPastExpiry),
        enabled: b.enabled,
        prefix: b.prefix === undefined ? undefined : checkPrefix(method, b.prefix),
        deviceLimit: b.deviceLimit?.devices,
        speedLimit: b.speedLimit?.bytesPerSecond,
      });
      await ctx.enforcer.refresh();
      const statuses = statusIndex(ctx.enforcer);
      return reply.code(201).send({
        accessKeys: keys.map((k) =>
          toAccessKeyJson(
            k,
            settings,
            statuses.get(k.id),
            apiEndpointOf(ctx, settings),
            ctx.webEndpoint?.(),
            ctx.shadowTls?.(),
            devicesInUseOf(ctx),
          ),
        ),
      });
    },
  );

  r.post(
    '/access-keys/bulk-action',
    {
      schema: {
        tags,
        description:
          'Enables, disables, deletes or extends the expiry of many keys in one transaction: all or nothing (an unknown id = 404, nothing changed)',
        body: BulkActionBody,
        response: { 200: BulkActionResult, 400: ErrorBody, 404: ErrorBody },
      },
    },
    async (req) => {
      const { action, ids, days } = req.body;
      if ((action === 'extend') !== (days !== undefined))
        throw invalid(
          'days',
          `Invalid "days": ${action === 'extend' ? 'required with' : 'only with'} "extend"`,
        );
      const now = ctx.clock.now();
      const missing =
        action === 'delete'
          ? await store.deleteKeys(ids)
          : await store.updateKeys(ids, (k) =>
              action === 'extend'
                ? { expiresAt: Math.round(Math.max(now, k.expiresAt ?? now) + days! * 86_400_000) }
                : { enabled: action === 'enable' },
            );
      if (missing.length > 0) throw keysNotFound(missing);
      await ctx.enforcer.refresh();
      if (action === 'delete') {
        for (const id of new Set(ids)) {
          ctx.control.closeKeyConnections(id);
          ctx.metrics?.removeKey(id);
        }
      }
      return { changed: new Set(ids).size };
    },
  );

  r.get(
    '/access-keys/:id/usage',
    {
      schema: {
        tags,
        description: 'Usage of one key: current limit window and trailing 30 days',
        params: IdParams,
        response: { 200: KeyUsage, 404: ErrorBody },
      },
    },
    async (req) => {
      const now = ctx.clock.now();
      const status = (await evaluateKeys(store, now)).find((s) => s.key.id === req.params.id);
      if (!status) throw keyNotFound(req.params.id);
      const t = (await store.usageSince(now - ROLLING_WINDOW_MS)).get(req.params.id) ?? { up: 0, down: 0 };
      return {
        id: status.key.id,
        state: status.state,
        dataLimitPeriod: status.key.limitPeriod,
        windowStartTimestampMs: status.windowStart,
        nextResetTimestampMs: nextReset(status.key.limitPeriod, now),
        dataUsed: { bytes: status.usedBytes },
        dataLimit: status.limitBytes === null ? null : { bytes: status.limitBytes },
        trailing30Days: { up: t.up, down: t.down, bytes: t.up + t.down },
        openConnections: ctx.control.openConnections().get(status.key.id) ?? 0,
      };
    },
  );
}
