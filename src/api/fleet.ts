/**
 * The fleet in the API (issue 16), present only on a fleet node (`ladder server --node`):
 * the servers keys list (rotation: the active, unblocked, up nodes, each with its transports) and
 * the node routes under the admin prefix (GET /nodes, drain, block, unblock, DELETE, addresses).
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { isHostName } from '../shared/parse.js';
import {
  keyAddresses,
  keyNodes,
  keysFallbackNote,
  listedNodes,
  NodeError,
  type NodeRecord,
} from '../store/index.js';
import type { ApiContext, ShadowTlsEndpoint, WebEndpoint } from './context.js';
import { ApiError, invalid } from './errors.js';

/** One node as keys list it: its public addresses, its web front and ShadowTLS port, if it has them. */
export interface FleetServer {
  name: string;
  hosts: string[];
  web?: WebEndpoint | undefined;
  stls?: ShadowTlsEndpoint | undefined;
}

/** A node's ShadowTLS port, when it takes per-key passwords (the only kind a subscription can give). */
function stlsOf(n: NodeRecord): ShadowTlsEndpoint | undefined {
  const t = n.transports.find((x) => x.type === 'shadowtls');
  if (!t || t.type !== 'shadowtls' || t.passwords !== 'per-key') return undefined;
  return { port: t.port, sni: t.sni, udp: t.udp };
}

function webOf(n: NodeRecord): WebEndpoint | undefined {
  const t = n.transports.find((x) => x.type === 'websocket');
  if (!t || t.type !== 'websocket') return undefined;
  return {
    host: t.host ?? keyAddresses(n)[0],
    port: t.port,
    path: t.path,
    tls: t.tls,
    mux: t.mux,
    udp: t.udp,
    keyPort: t.keyPort,
  };
}

/** The servers a key lists now, or undefined when this is not a fleet node (list itself, as before). */
export async function fleetServers(ctx: ApiContext): Promise<FleetServer[] | undefined> {
  if (!ctx.fleet) return undefined;
  // Suspected (reported blocked) addresses are left out; the node's other addresses stay.
  const nodes = keyNodes(await ctx.fleet.nodes.list());
  if (nodes.length === 0) return undefined;
  return nodes.map((n) => ({ name: n.name, hosts: keyAddresses(n), web: webOf(n), stls: stlsOf(n) }));
}

/** A node as the API shows it: `status` is the state, or "down" when the heartbeat is stale. */
export function nodeJson(n: NodeRecord): Record<string, unknown> {
  return {
    name: n.name,
    status: n.down ? 'down' : n.state,
    state: n.state,
    down: n.down,
    ...(n.stateReason !== null ? { stateReason: n.stateReason } : {}),
    addresses: n.addresses,
    ...(n.suspectedAddresses.length > 0 ? { suspectedAddresses: n.suspectedAddresses } : {}),
    port: n.port,
    transports: n.transports,
    version: n.version,
    ...(n.stopped ? { stopped: true } : { heartbeatAgeMs: n.heartbeatAgeMs }),
    startedTimestampMs: n.startedAt,
    keysVersion: n.keysVersion,
    ...(n.apiPort !== null ? { apiPort: n.apiPort } : {}),
  };
}

function apiError(err: unknown): unknown {
  if (!(err instanceof NodeError)) return err;
  if (err.code === 'NODE_NOT_FOUND') return new ApiError(404, 'NotFoundError', err.message);
  if (err.code === 'NODE_RUNNING') return new ApiError(409, 'ConflictError', err.message);
  return invalid('name', err.message);
}

const NameParams = z.object({ name: z.string().min(1).max(128) });
const tags = ['Ladder extensions'];
/** Drain and block take an optional reason (shown in GET /nodes as `stateReason`). */
const ReasonBody = z.object({ reason: z.string().max(200).optional() }).optional();

export function registerNodeRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const fleet = ctx.fleet;
  if (!fleet) return;
  const r = app.withTypeProvider<ZodTypeProvider>();
  const wrap = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      throw apiError(err);
    }
  };

  r.get(
    '/nodes',
    { schema: { tags, description: 'Fleet nodes, their state, heartbeat age and keys version' } },
    async () => {
      const [nodes, keysVersion] = await Promise.all([fleet.nodes.list(), fleet.nodes.keysVersion()]);
      return {
        self: fleet.self(),
        keysVersion,
        ...(fleet.pendingUsageBytes ? { pendingUsageBytes: fleet.pendingUsageBytes() } : {}),
        listed: listedNodes(nodes).map((n) => n.name),
        ...(await fallbackOf(nodes)),
        nodes: nodes.map(nodeJson),
      };
    },
  );

  /**
   * `keysFallback` when keys list no node: the store's hostnameForAccessKeys they give instead,
   * and the one line that says so (the dashboard shows it; `ladder nodes` prints the same).
   */
  const fallbackOf = async (
    nodes: readonly NodeRecord[],
  ): Promise<{ keysFallback?: { hostnameForAccessKeys: string; warning: string } }> => {
    const host = (await ctx.store.getSettings()).hostnameForAccessKeys;
    const warning = keysFallbackNote(nodes, host);
    return warning === undefined ? {} : { keysFallback: { hostnameForAccessKeys: host, warning } };
  };

  const states = { drain: 'draining', block: 'blocked', unblock: 'active' } as const;
  for (const [verb, state] of Object.entries(states)) {
    r.post(
      `/nodes/:name/${verb}`,
      {
        schema: {
          tags,
          description: `Sets the node ${state} (keys ${state === 'active' ? 'list it again' : 'stop listing it at their next fetch'})`,
          params: NameParams,
          ...(verb === 'unblock' ? {} : { body: ReasonBody }),
        },
      },
      async (req) => {
        const reason = (req.body as z.infer<typeof ReasonBody>)?.reason?.trim() || null;
        const changed = nodeJson(await wrap(() => fleet.nodes.setState(req.params.name, state, reason)));
        // The last listed node drained or blocked: say where keys point now (as the CLI does).
        return { ...changed, ...(await fallbackOf(await fleet.nodes.list())) };
      },
    );
  }

  r.delete(
    '/nodes/:name',
    {
      schema: {
        tags,
        description: 'Forgets a node (refused with 409 while its heartbeat is fresh)',
        params: NameParams,
      },
    },
    async (req, reply) => {
      await wrap(() => fleet.nodes.remove(req.params.name));
      return reply.code(204).send();
    },
  );

  r.post(
    '/nodes/:name/addresses',
    {
      schema: {
        tags,
        description: 'Adds a public address (listed first); keys pick it up at their next fetch',
        params: NameParams,
        body: z.object({ address: z.string().min(1).max(253) }),
      },
    },
    async (req) => {
      if (!isHostName(req.body.address))
        throw invalid('address', 'Invalid "address": not an IP address or a DNS name');
      return nodeJson(await wrap(() => fleet.nodes.addAddress(req.params.name, req.body.address)));
    },
  );
}
