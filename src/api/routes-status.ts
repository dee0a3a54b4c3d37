import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ErrorBody } from './schemas.js';
import type { ApiContext } from './context.js';

const DAY_MS = 86_400_000;
const tags = ['Ladder extensions'];

const UsageHistoryQuery = z.object({
  days: z.coerce
    .number()
    .int()
    .min(1)
    .max(90)
    .optional()
    .meta({ description: 'How many UTC days, today included (default 30)' }),
  keyId: z.string().min(1).max(128).optional().meta({ description: 'One key only (default: every key)' }),
});

const UsageHistory = z.object({
  days: z.array(
    z.object({ startTimestampMs: z.number(), up: z.number(), down: z.number(), bytes: z.number() }),
  ),
});

const ServerStatus = z.object({
  startedTimestampMs: z.number(),
  keys: z.object({
    total: z.number().int(),
    active: z.number().int(),
    disabled: z.number().int(),
    expired: z.number().int(),
    over_limit: z.number().int(),
  }),
  openConnections: z.number().int(),
  transports: z.array(
    z.object({
      kind: z.enum(['shadowsocks', 'websocket']),
      ports: z.array(z.number().int()),
      methods: z.array(z.string()).optional(),
      tls: z.boolean().optional(),
      udp: z.boolean().optional(),
    }),
  ),
  fleet: z.object({ nodes: z.number().int() }).optional().meta({
    description: 'Present when the server is a node of a fleet (the dashboard then shows its Nodes page)',
  }),
});

/**
 * What the dashboard's overview shows that the other routes do not give in one call: daily usage
 * for a chart (server-wide or one key) and a status summary (key states, open connections, the
 * transports keys are served on).
 */
export function registerStatusRoutes(app: FastifyInstance, ctx: ApiContext, startedAt: number): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { store } = ctx;

  r.get(
    '/server/usage-history',
    {
      schema: {
        tags,
        description:
          'Bytes per UTC day over the last `days` days (oldest first, today last), for every key or one',
        querystring: UsageHistoryQuery,
        response: { 200: UsageHistory, 400: ErrorBody },
      },
    },
    async (req) => {
      const n = req.query.days ?? 30;
      const today = Math.floor(ctx.clock.now() / DAY_MS) * DAY_MS;
      const first = today - (n - 1) * DAY_MS;
      const days = Array.from({ length: n }, (_, i) => ({
        startTimestampMs: first + i * DAY_MS,
        up: 0,
        down: 0,
        bytes: 0,
      }));
      for (const b of await store.usageBuckets(first)) {
        if (req.query.keyId !== undefined && b.keyId !== req.query.keyId) continue;
        const d = days[Math.floor((b.bucket - first) / DAY_MS)];
        if (!d) continue;
        d.up += b.up;
        d.down += b.down;
        d.bytes += b.up + b.down;
      }
      return { days };
    },
  );

  r.get(
    '/server/status',
    {
      schema: {
        tags,
        description: 'Key states, open connections and the transports keys are served on',
        response: { 200: ServerStatus },
      },
    },
    async () => {
      const statuses = ctx.enforcer.statuses;
      const keys = { total: statuses.length, active: 0, disabled: 0, expired: 0, over_limit: 0 };
      for (const s of statuses) keys[s.state] += 1;
      let open = 0;
      for (const n of ctx.control.openConnections().values()) open += n;
      const list = await store.listKeys();
      const transports: z.infer<typeof ServerStatus>['transports'] = [
        {
          kind: 'shadowsocks',
          ports: [...new Set(list.map((k) => k.port))].sort((a, b) => a - b),
          methods: [...new Set(list.map((k) => k.method))].sort(),
        },
      ];
      const web = ctx.webEndpoint?.();
      if (web) transports.push({ kind: 'websocket', ports: [web.port], tls: web.tls, udp: web.udp });
      const fleet = ctx.fleet ? { nodes: (await ctx.fleet.nodes.list()).length } : undefined;
      return {
        startedTimestampMs: startedAt,
        keys,
        openConnections: open,
        transports,
        ...(fleet ? { fleet } : {}),
      };
    },
  );
}
