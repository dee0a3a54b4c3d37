/**
 * Fleet nodes (issue 16): the server processes that share one PostgreSQL store, what clients need
 * to reach each (public addresses, port, transports), and whether keys should list it. A node
 * writes its own row (register, then a heartbeat every HEARTBEAT_MS); operators change its state
 * (drain, block, unblock, rm, add-address) through the CLI or the API. Heartbeat ages are measured
 * on the database's clock, so nodes with skewed clocks agree on who is down.
 */
import { sql, type Kysely } from 'kysely';
import { num, numOrNull } from './rows.js';
import type { Database, NodesTable } from './schema.js';
import { CodedError } from '../shared/errors.js';

/** How often a node writes its heartbeat. */
export const HEARTBEAT_MS = 2000;
/** A node whose heartbeat is older than this (three missed heartbeats) is shown down. */
export const DOWN_AFTER_MS = 3 * HEARTBEAT_MS;

/** Stored states; `down` is derived from the heartbeat (see NodeRecord.down). */
export type NodeState = 'active' | 'draining' | 'blocked' | 'suspected';
export const NODE_STATES: readonly NodeState[] = ['active', 'draining', 'blocked', 'suspected'];

/**
 * A web front's public parameters (Shadowsocks over WebSocket): what keys and subscriptions need
 * to offer it. The API's WebEndpoint is this shape.
 */
export interface WebFront {
  /** What clients dial and send as Host/SNI; undefined = the server's address (a node's first). */
  host?: string | undefined;
  port: number;
  /** The secret path, '/SECRET': v2ray-plugin streams at it, Outline's at `${path}/tcp` and `${path}/udp`. */
  path: string;
  tls: boolean;
  /** Ask v2ray-plugin clients for Mux.Cool (true) or raw streams (false); undefined = each client's default. */
  mux?: boolean | undefined;
  /** UDP over WebSocket at `${path}/udp` (Outline's packet endpoint) is served. */
  udp: boolean;
  /** Only keys on this data port are reachable through it; undefined = every key. */
  keyPort?: number | undefined;
  /**
   * Shadowsocks over gRPC (service name = the path without '/') reaches the front here; false
   * when it cannot (a TLS front without h2). Undefined = yes with TLS (src/server/web/grpc.ts).
   */
  grpc?: boolean | undefined;
}

/**
 * A node's ShadowTLS v3 port: what subscriptions need to list it. `passwords: 'per-key'`: each key
 * has its own password, derived from the key (keyShadowTlsPassword), so none is stored; a node
 * whose port took only a server-wide password would need another value, and is not listed.
 */
export interface ShadowTlsFront {
  port: number;
  /** The handshake site's name: the SNI clients send. */
  sni: string;
  /** UDP rides inside the streams (UDP-over-TCP v2). */
  udp: boolean;
  passwords: 'per-key';
}

/** A way to reach the node, with the public parameters a key or subscription needs. */
export type NodeTransport =
  | { type: 'shadowsocks'; port: number; udp: boolean }
  | ({ type: 'websocket' } & WebFront)
  | ({ type: 'shadowtls' } & ShadowTlsFront);

export interface NodeInfo {
  name: string;
  addresses: string[];
  port: number;
  transports: NodeTransport[];
  version: string;
  apiPort?: number | null | undefined;
}

export interface NodeRecord extends NodeInfo {
  state: NodeState;
  stateReason: string | null;
  stateChangedAt: number | null;
  startedAt: number;
  heartbeatAt: number;
  /** Milliseconds since the last heartbeat, on the database's clock. */
  heartbeatAgeMs: number;
  /** The heartbeat is older than DOWN_AFTER_MS (or the node stopped cleanly). */
  down: boolean;
  /** The node stopped cleanly (leave()): no heartbeat at all. */
  stopped: boolean;
  /** The keys version the node had applied at its last heartbeat. */
  keysVersion: number;
  apiPort: number | null;
  /** Addresses enough distinct keys reported blocked (blocked-address detection); keys leave them out. */
  suspectedAddresses: string[];
}

/** Blocked-address detection: `keys` distinct keys reporting an address within `windowMs` mark it suspected. */
export interface ReportPolicy {
  keys: number;
  windowMs: number;
}
export const DEFAULT_REPORT_POLICY: ReportPolicy = { keys: 3, windowMs: 10 * 60_000 };

/** What one report did: the node the address belongs to, the distinct keys within the window. */
export interface ReportOutcome {
  node: string;
  keys: number;
  /** The address is suspected now (by this report or earlier). */
  suspected: boolean;
  /** This report marked it. */
  marked: boolean;
}

export type NodeErrorCode = 'NODE_RUNNING' | 'NODE_NOT_FOUND' | 'NODE_INVALID';
export class NodeError extends CodedError<NodeErrorCode> {
  override readonly name = 'NodeError';
}

/** Node names: what operators type; safe in logs, URLs and metric labels. */
export const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export function checkNodeName(name: string, what = 'node name'): void {
  if (!NODE_NAME.test(name))
    throw new NodeError(
      'NODE_INVALID',
      `${what} must be 1-63 letters, digits, '.', '_' or '-' (starting with a letter or digit), got "${name.slice(0, 80)}"`,
    );
}

function jsonArray(text: string): unknown[] {
  try {
    const v = JSON.parse(text) as unknown;
    return Array.isArray(v) ? v : [];
  } catch {
    return [];
  }
}

function toState(v: string): NodeState {
  return (NODE_STATES as readonly string[]).includes(v) ? (v as NodeState) : 'active';
}

function rowToNode(r: NodesTable, now: number): NodeRecord {
  const age = Math.max(0, now - num(r.heartbeat_at));
  return {
    name: r.name,
    addresses: jsonArray(r.addresses).filter((a): a is string => typeof a === 'string'),
    port: num(r.port),
    transports: jsonArray(r.transports) as NodeTransport[],
    version: r.version,
    state: toState(r.state),
    stateReason: r.state_reason,
    stateChangedAt: numOrNull(r.state_changed_at),
    startedAt: num(r.started_at),
    heartbeatAt: num(r.heartbeat_at),
    heartbeatAgeMs: age,
    down: age > DOWN_AFTER_MS,
    stopped: num(r.heartbeat_at) === 0,
    keysVersion: num(r.keys_version),
    apiPort: numOrNull(r.api_port),
    suspectedAddresses: strings(r.suspected_addresses ?? '[]'),
  };
}

function strings(text: string): string[] {
  return jsonArray(text).filter((a): a is string => typeof a === 'string');
}

/** The addresses keys list for a node: its addresses less the suspected ones. */
export function keyAddresses(n: NodeRecord): string[] {
  return n.addresses.filter((a) => !n.suspectedAddresses.includes(a));
}

/** Nodes keys should list: active and up; if none is, every one not blocked or suspected (fail open). */
export function listedNodes(nodes: readonly NodeRecord[]): NodeRecord[] {
  const up = nodes.filter((n) => n.state === 'active' && !n.down);
  if (up.length > 0) return up;
  return nodes.filter((n) => n.state === 'active' || n.state === 'draining');
}

/** The nodes keys list now: listedNodes that have an address not suspected blocked. */
export function keyNodes(nodes: readonly NodeRecord[]): NodeRecord[] {
  return listedNodes(nodes).filter((n) => keyAddresses(n).length > 0);
}

/**
 * When keys list no node (every one blocked, suspected or down), dynamic keys and subscriptions
 * give the store's hostnameForAccessKeys `host`, as a lone server would: the one line that says
 * so, whose address that is when a node is out of the keys with it, and what to do. Undefined
 * while a node is listed (or there is none). `esc` makes names safe where the line is shown.
 */
export function keysFallbackNote(
  all: readonly NodeRecord[],
  host: string,
  esc: (s: string) => string = (s) => s,
): string | undefined {
  if (all.length === 0 || keyNodes(all).length > 0) return undefined;
  const owner = all.find((x) => x.addresses.includes(host));
  const whose = owner
    ? ` (an address of node ${esc(owner.name)}, ${owner.down ? 'down' : owner.suspectedAddresses.includes(host) ? 'suspected' : owner.state})`
    : '';
  return `no node is listed in the keys now (every node is blocked, suspected or down): dynamic keys and subscriptions give hostnameForAccessKeys, ${esc(host)}${whose}; unblock a node, add one, or set it with PUT /server/hostname-for-access-keys`;
}

/** The nodes table of a store (SQLite or PostgreSQL). */
export class NodeRegistry {
  readonly #db: Kysely<Database>;
  readonly #postgres: boolean;

  constructor(db: Kysely<Database>, dialect: 'sqlite' | 'postgres') {
    this.#db = db;
    this.#postgres = dialect === 'postgres';
  }

  /** The database's clock (ms since the epoch). */
  async now(db: Kysely<Database> = this.#db): Promise<number> {
    const q = this.#postgres
      ? sql<{ t: string }>`select (extract(epoch from clock_timestamp()) * 1000)::bigint as t`
      : sql<{ t: number }>`select cast((julianday('now') - 2440587.5) * 86400000 as integer) as t`;
    const r = await q.execute(db);
    return num(r.rows[0]!.t);
  }

  /** The keys version (PostgreSQL: the sequence the keys trigger advances; SQLite: 0). */
  async keysVersion(): Promise<number> {
    if (!this.#postgres) return 0;
    const r = await sql<{
      v: string;
    }>`select case when is_called then last_value else 0 end as v from ladder_keys_version`.execute(this.#db);
    return num(r.rows[0]!.v);
  }

  async list(): Promise<NodeRecord[]> {
    const [rows, now] = await Promise.all([
      this.#db.selectFrom('nodes').selectAll().orderBy('name').execute(),
      this.now(),
    ]);
    return rows.map((r) => rowToNode(r, now));
  }

  async get(name: string): Promise<NodeRecord | undefined> {
    return (await this.list()).find((n) => n.name === name);
  }

  /**
   * Claim `info.name` for the process `instance`: refused (NODE_RUNNING) while another process
   * holds it with a fresh heartbeat. A restart keeps the state an operator set (draining, blocked)
   * and the addresses added with add-address.
   */
  async register(info: NodeInfo, instance: string): Promise<NodeRecord> {
    checkNodeName(info.name);
    return this.#db.transaction().execute(async (trx) => {
      const now = await this.now(trx);
      const q = trx.selectFrom('nodes').selectAll().where('name', '=', info.name);
      const old = await (this.#postgres ? q.forUpdate() : q).executeTakeFirst();
      const values = {
        port: info.port,
        transports: JSON.stringify(info.transports),
        version: info.version,
        instance,
        started_at: now,
        heartbeat_at: now,
        api_port: info.apiPort ?? null,
      };
      if (old) {
        const age = now - num(old.heartbeat_at);
        if (old.instance !== instance && age <= DOWN_AFTER_MS)
          throw new NodeError(
            'NODE_RUNNING',
            `node "${info.name}" is already running (heartbeat ${(age / 1000).toFixed(1)} s ago); stop it or choose another --node name`,
          );
        // Addresses from --public-host first, then those an operator added.
        const kept = jsonArray(old.addresses).filter(
          (a): a is string => typeof a === 'string' && !info.addresses.includes(a),
        );
        await trx
          .updateTable('nodes')
          .set({ ...values, addresses: JSON.stringify([...info.addresses, ...kept]) })
          .where('name', '=', info.name)
          .execute();
      } else {
        await trx
          .insertInto('nodes')
          .values({
            ...values,
            name: info.name,
            addresses: JSON.stringify(info.addresses),
            state: 'active',
            state_reason: null,
            state_changed_at: now,
            keys_version: 0,
            suspected_addresses: '[]',
          })
          .execute();
      }
      const row = await trx
        .selectFrom('nodes')
        .selectAll()
        .where('name', '=', info.name)
        .executeTakeFirstOrThrow();
      return rowToNode(row, now);
    });
  }

  /** Write the heartbeat; false when the row is gone (rm) or another process took the name. */
  async heartbeat(name: string, instance: string, keysVersion: number): Promise<boolean> {
    const now = await this.now();
    const r = await this.#db
      .updateTable('nodes')
      .set({ heartbeat_at: now, keys_version: keysVersion })
      .where('name', '=', name)
      .where('instance', '=', instance)
      .executeTakeFirst();
    return num(r.numUpdatedRows) > 0;
  }

  /** A clean stop: the node shows down at once (its heartbeat is cleared) and keys stop listing it. */
  async leave(name: string, instance: string): Promise<void> {
    await this.#db
      .updateTable('nodes')
      .set({ heartbeat_at: 0 })
      .where('name', '=', name)
      .where('instance', '=', instance)
      .execute();
  }

  /**
   * Set an operator state. `active` (unblock/undrain) also clears blocked-address suspicion: the
   * node's suspected addresses return to the keys and its reports are forgotten.
   */
  async setState(name: string, state: NodeState, reason: string | null = null): Promise<NodeRecord> {
    const now = await this.now();
    const clear = state === 'active' ? { suspected_addresses: '[]' } : {};
    const r = await this.#db
      .updateTable('nodes')
      .set({ state, state_reason: reason, state_changed_at: now, ...clear })
      .where('name', '=', name)
      .executeTakeFirst();
    if (num(r.numUpdatedRows) === 0) throw notFound(name);
    if (state === 'active') await this.#db.deleteFrom('address_reports').where('node', '=', name).execute();
    return (await this.get(name))!;
  }

  /** Add a public address (first, so keys prefer it: usually a fresh one for a blocked node). */
  async addAddress(name: string, address: string): Promise<NodeRecord> {
    return this.#db
      .transaction()
      .execute(async (trx) => {
        const q = trx
          .selectFrom('nodes')
          .select(['addresses', 'suspected_addresses', 'state'])
          .where('name', '=', name);
        const row = await (this.#postgres ? q.forUpdate() : q).executeTakeFirst();
        if (!row) throw notFound(name);
        const list = strings(row.addresses).filter((a) => a !== address);
        // Added again by the operator: no longer suspected.
        const suspected = strings(row.suspected_addresses).filter((a) => a !== address);
        await trx
          .updateTable('nodes')
          .set({
            addresses: JSON.stringify([address, ...list]),
            suspected_addresses: JSON.stringify(suspected),
            // Every address was suspected: the fresh one puts the node back in the keys.
            ...(row.state === 'suspected' ? { state: 'active', state_reason: null } : {}),
          })
          .where('name', '=', name)
          .execute();
        await trx
          .deleteFrom('address_reports')
          .where('node', '=', name)
          .where('address', '=', address)
          .execute();
        return undefined;
      })
      .then(async () => (await this.get(name))!);
  }

  /**
   * A client's report that `address` failed while another node worked, for key `keyId` (no
   * client address is taken). Kept per (node, address, key) with the database's time; once
   * `policy.keys` distinct keys reported the address within `policy.windowMs`, it is suspected and
   * leaves the keys (the node's state becomes `suspected` when none of its addresses is left).
   * undefined: no node has that address.
   */
  async report(
    address: string,
    keyId: string,
    policy: ReportPolicy = DEFAULT_REPORT_POLICY,
  ): Promise<ReportOutcome | undefined> {
    return this.#db.transaction().execute(async (trx) => {
      const now = await this.now(trx);
      const rows = await trx.selectFrom('nodes').select(['name', 'addresses']).orderBy('name').execute();
      const name = rows.find((r) => strings(r.addresses).includes(address))?.name;
      if (name === undefined) return undefined;
      const q = trx.selectFrom('nodes').selectAll().where('name', '=', name);
      const node = await (this.#postgres ? q.forUpdate() : q).executeTakeFirstOrThrow();
      const since = now - policy.windowMs;
      await trx.deleteFrom('address_reports').where('reported_at', '<', since).execute();
      await trx
        .insertInto('address_reports')
        .values({ node: name, address, key_id: keyId, reported_at: now })
        .onConflict((oc) => oc.columns(['node', 'address', 'key_id']).doUpdateSet({ reported_at: now }))
        .execute();
      const c = await trx
        .selectFrom('address_reports')
        .select((eb) => eb.fn.count<number>('key_id').as('n'))
        .where('node', '=', name)
        .where('address', '=', address)
        .where('reported_at', '>=', since)
        .executeTakeFirstOrThrow();
      const keys = num(c.n);
      const suspected = strings(node.suspected_addresses);
      if (suspected.includes(address)) return { node: name, keys, suspected: true, marked: false };
      if (keys < policy.keys) return { node: name, keys, suspected: false, marked: false };
      suspected.push(address);
      const all = strings(node.addresses).every((a) => suspected.includes(a));
      const state =
        all && node.state === 'active'
          ? {
              state: 'suspected',
              state_reason: `every address reported blocked by ${keys} keys`,
              state_changed_at: now,
            }
          : {};
      await trx
        .updateTable('nodes')
        .set({ suspected_addresses: JSON.stringify(suspected), ...state })
        .where('name', '=', name)
        .execute();
      return { node: name, keys, suspected: true, marked: true };
    });
  }

  /** Remove a node's row; refused (NODE_RUNNING) while its heartbeat is fresh unless `force`. */
  async remove(name: string, force = false): Promise<void> {
    const n = await this.get(name);
    if (!n) throw notFound(name);
    if (!n.down && !force)
      throw new NodeError(
        'NODE_RUNNING',
        `node "${name}" is running (heartbeat ${(n.heartbeatAgeMs / 1000).toFixed(1)} s ago); stop it first, or drain it`,
      );
    await this.#db.deleteFrom('nodes').where('name', '=', name).execute();
  }
}

function notFound(name: string): NodeError {
  return new NodeError('NODE_NOT_FOUND', `no node named "${name.slice(0, 80)}"`);
}
