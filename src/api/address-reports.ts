/**
 * Blocked-address reports (issue 16): POST /access/{token}/report {"address": HOST} from a client
 * whose connections to HOST (a node's address) failed while another node of the same key worked.
 * The client sends it through the tunnel of the node that works, so the request comes from that
 * node, and nothing of the request's origin is read or stored: the store keeps (node, address,
 * key, time). Enough distinct keys within the window (the store's reportKeys and reportWindowSeconds
 * settings, PUT /server/blocked-address-reports) mark the address
 * suspected and keys leave it out (NodeRegistry.report). Each key may report a few times per
 * window (a replayed or looping client cannot flood the table); unknown tokens get the usual 404.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isHostName } from '../shared/parse.js';
import type { ReportPolicy } from '../store/index.js';
import type { ApiContext } from './context.js';
import { NOT_FOUND_BODY } from './errors.js';
import { keyByToken } from './subscriptions/state.js';

/** Reports one key may make per window (of the report policy). */
export const REPORTS_PER_KEY = 6;
const MAX_TRACKED_KEYS = 100_000;

export function registerReportRoute(app: FastifyInstance, ctx: ApiContext): void {
  const fleet = ctx.fleet;
  if (!fleet) return;
  // The store's (fleet-wide) setting, read per report so a change applies at once on every node;
  // FleetView.reportPolicy fixes it (tests).
  const policyNow = async (): Promise<ReportPolicy> => {
    if (fleet.reportPolicy) return fleet.reportPolicy;
    const s = await ctx.store.getSettings();
    return { keys: s.reportKeys, windowMs: s.reportWindowSeconds * 1000 };
  };
  // key id → times of its recent reports (this process's view; each node limits on its own).
  const recent = new Map<string, number[]>();
  const allow = (policy: ReportPolicy, keyId: string, now: number): boolean => {
    const since = now - policy.windowMs;
    const times = (recent.get(keyId) ?? []).filter((t) => t > since);
    if (times.length >= REPORTS_PER_KEY) return false;
    if (!recent.has(keyId) && recent.size >= MAX_TRACKED_KEYS) {
      for (const [k, v] of recent) if (v.every((t) => t <= since)) recent.delete(k);
      if (recent.size >= MAX_TRACKED_KEYS) return false;
    }
    times.push(now);
    recent.set(keyId, times);
    return true;
  };

  const handler = async (
    req: FastifyRequest<{ Params: { token: string }; Body: unknown }>,
    reply: FastifyReply,
  ): Promise<unknown> => {
    const found = await keyByToken(ctx, req.params.token);
    if (!found) return reply.code(404).send(NOT_FOUND_BODY);
    const address = (req.body as { address?: unknown } | null)?.address;
    if (typeof address !== 'string' || address.length > 253 || !isHostName(address))
      return reply
        .code(400)
        .send({ code: 'InvalidArgument', message: 'Invalid "address": not an IP address or a DNS name' });
    if (found.status.state !== 'active')
      return reply.code(403).send({ code: 'Forbidden', message: 'Key not active' });
    const policy = await policyNow();
    if (!allow(policy, found.key.id, ctx.clock.now()))
      return reply
        .code(429)
        .header('retry-after', String(Math.ceil(policy.windowMs / 1000)))
        .send({ code: 'TooManyRequests', message: 'Too many reports from this key' });
    const out = await fleet.nodes.report(address, found.key.id, policy);
    if (out?.marked)
      ctx.logger.warn(
        { node: out.node, keys: out.keys, windowMinutes: Math.round(policy.windowMs / 60_000) },
        `node ${out.node}: an address is suspected blocked (${out.keys} keys reported it); keys leave it out until "ladder nodes unblock ${out.node}"`,
      );
    // The same answer whether or not the address is a node's: no oracle for addresses.
    return reply.code(204).send();
  };
  // The key's URL + /report, for both of its formats (the client appends /report to what it fetched).
  for (const path of ['/access/:token/report', '/access/:token/sip008/report'])
    app.post<{ Params: { token: string }; Body: unknown }>(
      path,
      { schema: { hide: true }, bodyLimit: 1024 },
      handler,
    );
}
