import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { createAccessKeys, HOUR_MS, ROLLING_WINDOW_MS, StoreError } from '../store/index.js';
import { explainBindError, probeListen } from '../shared/listen.js';
import { durationMs } from '../shared/parse.js';
import { ApiError, invalid, keyNotFound } from './errors.js';
import { sendJson } from './compress.js';
import { decodeCursor, KeyListing, parseFields, parseLimit } from './key-listing.js';
import { KeySecretError } from './key-secrets.js';
import {
  checkMethod,
  checkPrefix,
  isValidHostname,
  newExpiry,
  secretsFor,
  secretApiError,
  apiEndpointOf,
  statusIndex,
  toAccessKeyJson,
  type ApiContext,
  devicesInUseOf,
} from './context.js';
import {
  AccessKey,
  AccessKeyPage,
  DataLimitBody,
  ErrorBody,
  HostnameBody,
  IdParams,
  KeyNameBody,
  ListQuery,
  MetricsEnabledBody,
  NameBody,
  NewAccessKeyBody,
  PortBody,
  Server,
  ServerMetrics,
  SinceQuery,
  TransferMetrics,
} from './schemas.js';

const NoContent = z.undefined().meta({ description: 'Done' });

/** Why this server could not listen on `port`: held by another program, or not allowed to its user. */
async function portProblem(port: number): Promise<'EADDRINUSE' | 'EACCES' | undefined> {
  try {
    await probeListen(port, '0.0.0.0');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES') return code;
  }
  return undefined;
}

/** Outline's `since` (e.g. "30d") in ms; default 30 days. */
function parseSince(since: string | undefined): number {
  if (since === undefined) return ROLLING_WINDOW_MS;
  const ms = durationMs(since);
  if (ms === undefined)
    throw invalid('since', 'Invalid "since": expected a number followed by s, m, h, d or w, e.g. 30d');
  return ms;
}

/**
 * Every endpoint of the Outline Server Management API (specs/outline-management-api.yml), same
 * paths, bodies, status codes and access URL format.
 */
export function registerOutlineRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { store } = ctx;
  const tags = {
    server: ['Server'],
    key: ['Access Key'],
    limit: ['Access Key', 'Limit'],
    exp: ['Experimental'],
  };
  // Ladder sends metrics nowhere; "enabled" is true while its Prometheus endpoint is served, or
  // when an operator (Outline Manager's sharing switch) turned it on.
  const metricsEnabled = (chosen: boolean): boolean => chosen || ctx.metricsServed?.() === true;
  const changed = async (): Promise<void> => {
    await ctx.enforcer.refresh();
  };

  r.get(
    '/server',
    {
      schema: {
        tags: tags.server,
        description: 'Returns information about the server',
        response: { 200: Server },
      },
    },
    async () => {
      const s = await store.getSettings();
      const out: z.infer<typeof Server> = {
        name: s.name,
        serverId: s.serverId,
        metricsEnabled: metricsEnabled(s.metricsEnabled),
        createdTimestampMs: s.createdTimestampMs,
        version: ctx.version,
        portForNewAccessKeys: s.portForNewAccessKeys,
        hostnameForAccessKeys: s.hostnameForAccessKeys,
      };
      if (s.accessKeyDataLimitBytes !== null) out.accessKeyDataLimit = { bytes: s.accessKeyDataLimitBytes };
      if (s.dynamicKeyBaseUrl !== null) out.dynamicKeyBaseUrl = s.dynamicKeyBaseUrl;
      out.openapi = `/${s.apiPrefix}/openapi.json`;
      // Ladder extension, on a fleet node: blocked-address detection's fleet-wide threshold.
      if (ctx.fleet) out.blockedAddressReports = { keys: s.reportKeys, windowSeconds: s.reportWindowSeconds };
      return out;
    },
  );

  r.put(
    '/server/hostname-for-access-keys',
    {
      schema: {
        tags: tags.server,
        description: 'Changes the hostname for access keys',
        body: HostnameBody,
        response: { 204: NoContent, 400: ErrorBody },
      },
    },
    async (req, reply) => {
      const hostname = req.body.hostname.trim();
      if (!isValidHostname(hostname)) {
        throw invalid('hostname', 'Invalid "hostname": must be a valid hostname or IP address');
      }
      await store.updateSettings({ hostnameForAccessKeys: hostname });
      return reply.code(204).send();
    },
  );

  r.put(
    '/server/port-for-new-access-keys',
    {
      schema: {
        tags: tags.key,
        description: 'Changes the default port for newly created access keys',
        body: PortBody,
        response: { 204: NoContent, 400: ErrorBody, 409: ErrorBody },
      },
    },
    async (req, reply) => {
      const { port } = req.body;
      await checkKeyPort(port);
      await store.updateSettings({ portForNewAccessKeys: port });
      return reply.code(204).send();
    },
  );

  for (const [path, extra] of [
    ['/server/access-key-data-limit', {}],
    ['/experimental/access-key-data-limit', { deprecated: true }],
  ] as const) {
    const t = path.startsWith('/experimental') ? [...tags.limit, 'Experimental'] : tags.limit;
    r.put(
      path,
      {
        schema: {
          ...extra,
          tags: t,
          description: 'Sets a data transfer limit for all access keys',
          body: DataLimitBody.pick({ limit: true }),
          response: { 204: NoContent, 400: ErrorBody },
        },
      },
      async (req, reply) => {
        await store.updateSettings({ accessKeyDataLimitBytes: req.body.limit.bytes });
        await changed();
        return reply.code(204).send();
      },
    );
    r.delete(
      path,
      {
        schema: {
          ...extra,
          tags: t,
          description: 'Removes the access key data limit',
          response: { 204: NoContent },
        },
      },
      async (_req, reply) => {
        await store.updateSettings({ accessKeyDataLimitBytes: null });
        await changed();
        return reply.code(204).send();
      },
    );
  }

  r.get(
    '/experimental/server/metrics',
    {
      schema: {
        tags: tags.exp,
        description: 'Server and per-key transfer figures over `since` (e.g. 30d)',
        querystring: SinceQuery,
        response: { 200: ServerMetrics, 400: ErrorBody },
      },
    },
    async (req) => {
      const now = ctx.clock.now();
      const since = now - parseSince(req.query.since);
      const buckets = await store.usageBuckets(since);
      const keys = await store.listKeys();
      const perKey = new Map<string, number>();
      const perHour = new Map<number, number>();
      let total = 0;
      for (const b of buckets) {
        const n = b.up + b.down;
        total += n;
        perKey.set(b.keyId, (perKey.get(b.keyId) ?? 0) + n);
        perHour.set(b.bucket, (perHour.get(b.bucket) ?? 0) + n);
      }
      const currentHour = Math.floor(now / HOUR_MS) * HOUR_MS;
      const elapsed = Math.max(1, (now - currentHour) / 1000);
      let peak = { bytes: 0, at: currentHour };
      for (const [at, n] of perHour) {
        const rate = at === currentHour ? n / elapsed : n / 3600;
        if (rate > peak.bytes) peak = { bytes: rate, at };
      }
      const open = ctx.control.openConnections();
      // A device-limited key's client addresses in use (docs/limits.md); other keys' are not
      // tracked, so their open connections stand in, as before.
      const devices = ctx.control.devicesInUse?.() ?? new Map<string, number>();
      return {
        server: {
          tunnelTime: { seconds: 0 },
          dataTransferred: { bytes: total },
          bandwidth: {
            current: {
              data: { bytes: Math.round((perHour.get(currentHour) ?? 0) / elapsed) },
              timestamp: Math.floor(now / 1000),
            },
            peak: { data: { bytes: Math.round(peak.bytes) }, timestamp: Math.floor(peak.at / 1000) },
          },
          // Ladder keeps no client addresses, so there is no per-location breakdown.
          locations: [],
        },
        // The spec types accessKeyId as an integer, so keys with non-numeric ids (created with
        // PUT /access-keys/{id}) are left out here; GET /metrics/transfer lists every key.
        accessKeys: keys
          .filter((k) => /^\d{1,15}$/.test(k.id))
          .map((k) => ({
            accessKeyId: Number(k.id),
            tunnelTime: { seconds: 0 },
            dataTransferred: { bytes: perKey.get(k.id) ?? 0 },
            connection: {
              lastTrafficSeen: k.lastSeenAt === null ? 0 : Math.floor(k.lastSeenAt / 1000),
              peakDeviceCount: {
                data: devices.get(k.id) ?? open.get(k.id) ?? 0,
                timestamp: Math.floor(now / 1000),
              },
            },
          })),
      };
    },
  );

  r.put(
    '/name',
    {
      schema: {
        tags: tags.server,
        description: 'Renames the server',
        body: NameBody,
        response: { 204: NoContent, 400: ErrorBody },
      },
    },
    async (req, reply) => {
      await store.updateSettings({ name: req.body.name });
      return reply.code(204).send();
    },
  );

  /**
   * A key on a port this server does not serve yet, held by another program or one its user may
   * not listen on (below 1024 without root or CAP_NET_BIND_SERVICE), could never work.
   */
  const checkKeyPort = async (port: number): Promise<void> => {
    const s = await store.getSettings();
    if (port === s.portForNewAccessKeys) return;
    if ((await store.listKeys()).some((k) => k.port === port)) return;
    const problem = await portProblem(port);
    if (problem === 'EADDRINUSE')
      throw new ApiError(409, 'ConflictError', `Port ${port} is already in use by another service`, 'port');
    if (problem === 'EACCES')
      throw invalid(
        'port',
        `Invalid "port": this server cannot listen on port ${port}: ${explainBindError(problem, port)}`,
      );
  };

  const createOne = async (
    body: z.infer<typeof NewAccessKeyBody>,
    id?: string,
  ): Promise<z.infer<typeof AccessKey>> => {
    const method = checkMethod(ctx, body.method);
    if (body.port !== undefined) await checkKeyPort(body.port);
    const { secret, makeSecret, check } = await secretsFor(ctx, {
      method,
      password: body.password,
      multiUser: body.multiUser,
    });
    let made;
    try {
      made = await createAccessKeys(store, {
        method,
        secret,
        makeSecret,
        id,
        port: body.port,
        name: body.name,
        dataLimitBytes: body.limit?.bytes,
        limitPeriod: body.dataLimitPeriod,
        expiresAt: newExpiry(ctx, body.expiresAt, body.allowPastExpiry),
        enabled: body.enabled,
        prefix: body.prefix === undefined ? undefined : checkPrefix(method, body.prefix),
        deviceLimit: body.deviceLimit?.devices,
        speedLimit: body.speedLimit?.bytesPerSecond,
        check,
      });
    } catch (err) {
      if (err instanceof KeySecretError) throw secretApiError(err); // the secret is another key's
      if (err instanceof StoreError && err.code === 'KEY_EXISTS') {
        throw new ApiError(
          409,
          'ConflictError',
          `Access key with id ${JSON.stringify(id)} already exists`,
          'id',
        );
      }
      throw err;
    }
    const { settings } = made;
    const key = made.keys[0]!;
    const statuses = await changed().then(() => statusIndex(ctx.enforcer));
    return toAccessKeyJson(
      key,
      settings,
      statuses.get(key.id),
      apiEndpointOf(ctx, settings),
      ctx.webEndpoint?.(),
      ctx.shadowTls?.(),
      devicesInUseOf(ctx),
    );
  };

  r.post(
    '/access-keys',
    {
      schema: {
        tags: tags.key,
        description: 'Creates a new access key',
        body: NewAccessKeyBody.optional(),
        response: { 201: AccessKey, 400: ErrorBody, 409: ErrorBody },
      },
    },
    async (req, reply) => reply.code(201).send(await createOne(req.body ?? {})),
  );

  const listing = new KeyListing(ctx);
  r.get(
    '/access-keys',
    {
      schema: {
        tags: tags.key,
        description:
          'Lists the access keys (streamed); with `limit` and/or `after` (Ladder extension), one page and the cursor of the next',
        querystring: ListQuery,
        response: { 200: AccessKeyPage, 400: ErrorBody },
      },
    },
    async (req, typed) => {
      // Already JSON (rendered through AccessKey page by page): sent as is, not serialized again.
      const reply = typed as unknown as FastifyReply;
      const { limit, after } = req.query;
      const fields = parseFields(req.query.fields);
      if (limit === undefined && after === undefined)
        return sendJson(req, reply, await listing.stream(fields));
      const size = parseLimit(limit);
      const from = after === undefined ? undefined : decodeCursor(after);
      return sendJson(req, reply, await listing.pageJson(size, from, fields));
    },
  );

  r.put(
    '/access-keys/:id',
    {
      schema: {
        tags: tags.key,
        description: 'Creates a new access key with a specific identifier',
        params: IdParams,
        body: NewAccessKeyBody.optional(),
        response: { 201: AccessKey, 400: ErrorBody, 409: ErrorBody },
      },
    },
    async (req, reply) => reply.code(201).send(await createOne(req.body ?? {}, req.params.id)),
  );

  r.get(
    '/access-keys/:id',
    {
      schema: {
        tags: tags.key,
        description: 'Get an access key',
        params: IdParams,
        response: { 200: AccessKey, 404: ErrorBody },
      },
    },
    async (req) => {
      const key = await store.getKey(req.params.id);
      if (!key) throw keyNotFound(req.params.id);
      const settings = await store.getSettings();
      return toAccessKeyJson(
        key,
        settings,
        statusIndex(ctx.enforcer).get(key.id),
        apiEndpointOf(ctx, settings),
        ctx.webEndpoint?.(),
        ctx.shadowTls?.(),
        devicesInUseOf(ctx),
      );
    },
  );

  r.delete(
    '/access-keys/:id',
    {
      schema: {
        tags: tags.key,
        description: 'Deletes an access key',
        params: IdParams,
        response: { 204: NoContent, 404: ErrorBody },
      },
    },
    async (req, reply) => {
      if (!(await store.deleteKey(req.params.id))) throw keyNotFound(req.params.id);
      await changed();
      ctx.control.closeKeyConnections(req.params.id);
      ctx.metrics?.removeKey(req.params.id);
      return reply.code(204).send();
    },
  );

  r.put(
    '/access-keys/:id/name',
    {
      schema: {
        tags: tags.key,
        description: 'Renames an access key',
        params: IdParams,
        body: KeyNameBody,
        response: { 204: NoContent, 400: ErrorBody, 404: ErrorBody },
      },
    },
    async (req, reply) => {
      if (!(await store.updateKey(req.params.id, { name: req.body.name }))) throw keyNotFound(req.params.id);
      return reply.code(204).send();
    },
  );

  r.put(
    '/access-keys/:id/data-limit',
    {
      schema: {
        tags: tags.limit,
        description: 'Sets a data limit for the given access key',
        params: IdParams,
        body: DataLimitBody,
        response: { 204: NoContent, 400: ErrorBody, 404: ErrorBody },
      },
    },
    async (req, reply) => {
      const patch = {
        dataLimitBytes: req.body.limit.bytes,
        ...(req.body.period ? { limitPeriod: req.body.period } : {}),
      };
      if (!(await store.updateKey(req.params.id, patch))) throw keyNotFound(req.params.id);
      await changed();
      return reply.code(204).send();
    },
  );

  r.delete(
    '/access-keys/:id/data-limit',
    {
      schema: {
        tags: tags.limit,
        description: 'Removes the data limit on the given access key',
        params: IdParams,
        response: { 204: NoContent, 404: ErrorBody },
      },
    },
    async (req, reply) => {
      if (!(await store.updateKey(req.params.id, { dataLimitBytes: null }))) throw keyNotFound(req.params.id);
      await changed();
      return reply.code(204).send();
    },
  );

  r.get(
    '/metrics/transfer',
    {
      schema: {
        tags: tags.key,
        description: 'Bytes transferred per access key over the trailing 30 days',
        response: { 200: TransferMetrics },
      },
    },
    async () => {
      const [keys, usage] = await Promise.all([
        store.listKeys(),
        store.usageSince(ctx.clock.now() - ROLLING_WINDOW_MS),
      ]);
      const out: Record<string, number> = {};
      for (const k of keys) {
        const u = usage.get(k.id);
        out[k.id] = u ? u.up + u.down : 0;
      }
      return { bytesTransferredByUserId: out };
    },
  );

  r.get(
    '/metrics/enabled',
    {
      schema: {
        tags: tags.server,
        description: 'Returns whether metrics is being shared',
        response: { 200: z.object({ metricsEnabled: z.boolean() }) },
      },
    },
    async () => ({ metricsEnabled: metricsEnabled((await store.getSettings()).metricsEnabled) }),
  );

  r.put(
    '/metrics/enabled',
    {
      schema: {
        tags: tags.server,
        description:
          'Enables or disables sharing of metrics (Ladder records the choice and never sends anything)',
        body: MetricsEnabledBody,
        response: { 204: NoContent, 400: ErrorBody },
      },
    },
    async (req, reply) => {
      await store.updateSettings({ metricsEnabled: req.body.metricsEnabled });
      return reply.code(204).send();
    },
  );
}
