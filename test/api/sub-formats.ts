/**
 * Each subscription format's own rules, written from the consumers' sources, for the
 * conformance tests: every check throws one AssertionError naming what and where.
 *
 * - Outline (outline-apps client/go/outline/parse.go, config/*.go, configyaml/parse.go): the body
 *   is YAML; a map with `transport` or `error` is the tunnel config (error and transport mutually
 *   exclusive), otherwise the legacy Shadowsocks JSON. Every typed object is decoded with
 *   DisallowUnknownField after dropping `$`-keys, so an unknown field fails the whole config.
 *   `first-supported` takes the first option the app can parse (not a network fallback).
 * - Clash/mihomo (mihomo adapter/outbound/shadowsocks.go, config/config.go): proxies need name,
 *   type, server, port, cipher, password; v2ray-plugin's plugin-opts fields; names unique across
 *   proxies and groups; groups reference existing proxies or REJECT/DIRECT; rules end in MATCH.
 * - sing-box (option/shadowsocks.go, option/outbound.go): shadowsocks outbounds need server,
 *   server_port, method, password; plugin is obfs-local or v2ray-plugin; selector members exist.
 * - SIP008: version 1, servers with id (UUID), remarks, server, server_port, password, method,
 *   optional plugin/plugin_opts; bytes_remaining only with bytes_used.
 */
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';

type Json = Record<string, unknown>;

const OUTLINE_CIPHERS = ['chacha20-ietf-poly1305', 'aes-256-gcm', 'aes-192-gcm', 'aes-128-gcm'];

function isMap(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** MapToAny: drop `$` keys, then refuse any field the struct does not have. */
function fields(where: string, m: Json, allowed: readonly string[]): Json {
  for (const k of Object.keys(m)) {
    if (k.startsWith('$')) continue;
    assert.ok(allowed.includes(k), `${where}: unknown field "${k}" (Outline rejects it)`);
  }
  return m;
}

function checkHostPort(where: string, v: unknown): string {
  assert.equal(typeof v, 'string', `${where}: endpoint must be "host:port"`);
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+):(\d+)$/.exec(v as string);
  assert.ok(m, `${where}: "${String(v)}" is not host:port`);
  const port = Number(m[2]);
  assert.ok(port >= 1 && port <= 65535, `${where}: port ${port}`);
  return v as string;
}

export interface OutlineChoice {
  /** What a client dials for TCP: host:port, or a WebSocket URL. */
  tcp: { direct: string } | { websocket: string };
  udp: { direct: string } | { websocket: string };
  cipher: string;
  secret: string;
  prefix?: string;
}

/** An endpoint as Outline's parser resolves it, for a client with or without WebSocket support. */
function endpoint(where: string, v: unknown, ws: boolean): { direct: string } | { websocket: string } {
  if (typeof v === 'string') return { direct: checkHostPort(where, v) };
  assert.ok(isMap(v), `${where}: endpoint is neither a string nor a map`);
  const type = v.$type;
  if (type === 'first-supported') {
    fields(where, v, ['options']);
    const opts = v.options;
    assert.ok(Array.isArray(opts) && opts.length > 0, `${where}: first-supported needs options`);
    for (const [i, o] of opts.entries()) {
      if (isMap(o) && o.$type === 'websocket' && !ws) continue; // ErrUnsupported → next option
      return endpoint(`${where}.options[${i}]`, o, ws);
    }
    assert.fail(`${where}: no supported option`);
  }
  if (type === 'websocket') {
    fields(where, v, ['url', 'endpoint']);
    const url = new URL(String(v.url));
    assert.ok(['ws:', 'wss:', 'http:', 'https:'].includes(url.protocol), `${where}: url scheme`);
    if (v.endpoint !== undefined) endpoint(`${where}.endpoint`, v.endpoint, ws);
    return { websocket: url.toString() };
  }
  return assert.fail(`${where}: endpoint type "${String(type)}" is not one Outline has`);
}

function shadowsocks(where: string, v: unknown, ws: boolean): OutlineChoice['tcp'] & Json {
  assert.ok(isMap(v) && v.$type === 'shadowsocks', `${where}: expected $type shadowsocks`);
  fields(where, v, ['endpoint', 'cipher', 'secret', 'prefix']);
  assert.ok(OUTLINE_CIPHERS.includes(String(v.cipher)), `${where}: cipher "${String(v.cipher)}"`);
  assert.ok(typeof v.secret === 'string' && v.secret.length > 0, `${where}: secret must not be empty`);
  if (v.prefix !== undefined) {
    assert.equal(typeof v.prefix, 'string');
    for (const ch of v.prefix as string)
      assert.ok(ch.codePointAt(0)! <= 0xff, `${where}: prefix code point > 255`);
  }
  return { ...endpoint(`${where}.endpoint`, v.endpoint, ws) };
}

/**
 * Parse an Outline dynamic-key body by Outline's rules. Returns the error object, or what a
 * client would use (`ws` = the app supports WebSocket endpoints), or the legacy fields.
 */
export function parseOutline(
  body: string,
  ws = true,
): { error: { message: string; details?: string } } | { tunnel: OutlineChoice } {
  const doc = parseYaml(body) as unknown;
  assert.ok(isMap(doc), 'Outline config is a map');
  if ('transport' in doc || 'error' in doc) {
    assert.ok(!('transport' in doc && 'error' in doc), 'error and transport are mutually exclusive');
    if (doc.error !== undefined) {
      const e = doc.error;
      assert.ok(isMap(e), 'error is a map');
      fields('error', e, ['message', 'details']);
      assert.equal(typeof e.message, 'string');
      return { error: e as { message: string; details?: string } };
    }
    const t = doc.transport;
    assert.ok(isMap(t) && t.$type === 'tcpudp', 'transport: $type tcpudp');
    fields('transport', t, ['tcp', 'udp']);
    const tcp = shadowsocks('transport.tcp', t.tcp, ws);
    const udp = shadowsocks('transport.udp', t.udp, ws);
    const tt = t.tcp as Json;
    assert.deepEqual([tt.cipher, tt.secret], [(t.udp as Json).cipher, (t.udp as Json).secret]);
    return {
      tunnel: {
        tcp,
        udp,
        cipher: String(tt.cipher),
        secret: String(tt.secret),
        ...(tt.prefix !== undefined ? { prefix: String(tt.prefix) } : {}),
      },
    };
  }
  fields('legacy config', doc, ['server', 'server_port', 'method', 'password', 'prefix']);
  const port = doc.server_port;
  assert.ok(
    Number.isInteger(port) && (port as number) > 0 && (port as number) < 65536,
    'server_port is a uint16',
  );
  assert.ok(OUTLINE_CIPHERS.includes(String(doc.method)), `method "${String(doc.method)}"`);
  const direct = `${String(doc.server)}:${String(port)}`;
  return {
    tunnel: {
      tcp: { direct },
      udp: { direct },
      cipher: String(doc.method),
      secret: String(doc.password),
      ...(doc.prefix !== undefined ? { prefix: String(doc.prefix) } : {}),
    },
  };
}

const CLASH_SS_CIPHERS = [
  'aes-128-gcm',
  'aes-192-gcm',
  'aes-256-gcm',
  'chacha20-ietf-poly1305',
  '2022-blake3-aes-128-gcm',
  '2022-blake3-aes-256-gcm',
  '2022-blake3-chacha20-poly1305',
];
const CLASH_PROXY_FIELDS = [
  'name',
  'type',
  'server',
  'port',
  'cipher',
  'password',
  'udp',
  'udp-over-tcp',
  'udp-over-tcp-version',
  'plugin',
  'plugin-opts',
  // mihomo adapter/outbound/shadowsocks.go: the uTLS hello of shadow-tls (and v2ray-plugin TLS).
  'client-fingerprint',
];
/** mihomo's shadowTLSOption (adapter/outbound/shadowsocks.go): password, host, fingerprint, skip-cert-verify, version. */
const SHADOW_TLS_OPTS = ['password', 'host', 'fingerprint', 'skip-cert-verify', 'version'];
const V2RAY_PLUGIN_OPTS = [
  'mode',
  'host',
  'path',
  'tls',
  'mux',
  'headers',
  'skip-cert-verify',
  'fingerprint',
  // mihomo's own (adapter/outbound/shadowsocks.go v2rayObfsOption): HTTPUpgrade instead of WebSocket.
  'v2ray-http-upgrade',
  'v2ray-http-upgrade-fast-open',
];

/** A Clash/mihomo profile: returns its ss proxies. */
export function checkClash(body: string): Json[] {
  const doc = parseYaml(body) as Json;
  assert.ok(isMap(doc), 'Clash profile is a map');
  const proxies = doc.proxies as Json[];
  assert.ok(Array.isArray(proxies), 'proxies is a list');
  const names = new Set<string>();
  for (const [i, p] of proxies.entries()) {
    const w = `proxies[${i}]`;
    for (const k of Object.keys(p)) assert.ok(CLASH_PROXY_FIELDS.includes(k), `${w}: unexpected field ${k}`);
    for (const k of ['name', 'type', 'server', 'port', 'cipher', 'password'])
      assert.ok(p[k] !== undefined, `${w}: ${k}`);
    assert.equal(p.type, 'ss', `${w}: type`);
    assert.ok(
      Number.isInteger(p.port) && (p.port as number) >= 1 && (p.port as number) <= 65535,
      `${w}: port`,
    );
    assert.ok(CLASH_SS_CIPHERS.includes(String(p.cipher)), `${w}: cipher`);
    if (p['udp-over-tcp'] !== undefined) {
      // mihomo adapter/outbound/shadowsocks.go: a bool, and version 1 (the default) or 2.
      assert.equal(typeof p['udp-over-tcp'], 'boolean', `${w}: udp-over-tcp`);
      assert.ok(
        [undefined, 1, 2].includes(p['udp-over-tcp-version'] as number),
        `${w}: udp-over-tcp-version`,
      );
    } else
      assert.equal(p['udp-over-tcp-version'], undefined, `${w}: udp-over-tcp-version without udp-over-tcp`);
    if (p.plugin === 'shadow-tls') {
      const o = p['plugin-opts'] as Json;
      for (const k of Object.keys(o)) assert.ok(SHADOW_TLS_OPTS.includes(k), `${w}: plugin-opts.${k}`);
      assert.ok(
        typeof o.host === 'string' && typeof o.password === 'string',
        `${w}: shadow-tls host, password`,
      );
      assert.ok([undefined, 1, 2, 3].includes(o.version as number), `${w}: shadow-tls version is a number`);
    } else if (p.plugin !== undefined) {
      assert.equal(p.plugin, 'v2ray-plugin');
      const o = p['plugin-opts'] as Json;
      assert.ok(isMap(o) && o.mode === 'websocket', `${w}: plugin-opts.mode websocket`);
      for (const k of Object.keys(o)) assert.ok(V2RAY_PLUGIN_OPTS.includes(k), `${w}: plugin-opts.${k}`);
      for (const k of ['tls', 'mux', 'v2ray-http-upgrade', 'v2ray-http-upgrade-fast-open'])
        assert.ok(o[k] === undefined || typeof o[k] === 'boolean', `${w}: plugin-opts.${k} is a bool`);
    }
    assert.ok(!names.has(String(p.name)), `${w}: duplicate name`);
    names.add(String(p.name));
  }
  const groups = doc['proxy-groups'] as Json[];
  assert.ok(Array.isArray(groups) && groups.length > 0, 'proxy-groups');
  for (const g of groups) {
    assert.ok(!names.has(String(g.name)), `group "${String(g.name)}" named like a proxy`);
    names.add(String(g.name));
  }
  for (const g of groups) {
    assert.ok(['select', 'url-test', 'fallback', 'load-balance'].includes(String(g.type)));
    for (const m of g.proxies as string[])
      assert.ok(names.has(m) || m === 'REJECT' || m === 'DIRECT', `group member "${m}" exists`);
  }
  const rules = doc.rules as string[];
  const last = rules[rules.length - 1]!.split(',');
  assert.equal(last[0], 'MATCH');
  assert.equal(last.length, 2, 'MATCH rule has one target (no comma in the group name)');
  assert.ok(names.has(last[1]!), 'MATCH target exists');
  return proxies;
}

/** A sing-box config: returns its shadowsocks outbounds. */
export function checkSingBox(body: string): Json[] {
  const doc = JSON.parse(body) as Json;
  const outs = doc.outbounds as Json[];
  assert.ok(Array.isArray(outs), 'outbounds');
  const tags = new Set<string>();
  for (const o of outs) {
    assert.equal(typeof o.type, 'string');
    assert.ok(!tags.has(String(o.tag)), `duplicate tag ${String(o.tag)}`);
    tags.add(String(o.tag));
  }
  const ss = outs.filter((o) => o.type === 'shadowsocks');
  for (const o of ss) {
    for (const k of ['server', 'server_port', 'method', 'password'])
      assert.ok(o[k] !== undefined, `outbound ${String(o.tag)}: ${k} required`);
    assert.ok(Number.isInteger(o.server_port));
    // sing-box option/udp_over_tcp.go: a bool (version 2), or {enabled, version 1|2}.
    const uot = o.udp_over_tcp as Json | boolean | undefined;
    if (uot !== undefined && typeof uot !== 'boolean') {
      assert.ok(isMap(uot) && typeof uot.enabled === 'boolean', 'udp_over_tcp.enabled');
      assert.ok([undefined, 1, 2].includes(uot.version as number), 'udp_over_tcp.version');
    }
    if (o.plugin !== undefined) {
      assert.ok(['obfs-local', 'v2ray-plugin'].includes(String(o.plugin)), 'plugin is one sing-box has');
      assert.equal(typeof o.plugin_opts, 'string');
    }
    if (o.detour !== undefined) assert.ok(tags.has(String(o.detour)), `detour ${String(o.detour)} exists`);
  }
  // sing-box option/shadowtls.go: server, server_port, version, password, and its tls (enabled, server_name).
  for (const o of outs.filter((x) => x.type === 'shadowtls')) {
    for (const k of ['server', 'server_port', 'version', 'password'])
      assert.ok(o[k] !== undefined, `shadowtls ${String(o.tag)}: ${k} required`);
    const tls = o.tls as Json;
    assert.ok(isMap(tls) && tls.enabled === true && typeof tls.server_name === 'string', 'shadowtls tls');
  }
  for (const o of outs.filter((x) => x.type === 'selector' || x.type === 'urltest'))
    for (const m of o.outbounds as string[]) assert.ok(tags.has(m), `selector member ${m} exists`);
  const route = doc.route as Json;
  assert.ok(tags.has(String(route.final)), 'route.final exists');
  // DNS in sing-box 1.12's format (docs: configuration/dns/server, migration "1.12.0"): every
  // server has a type (the legacy `address: 'tcp://…'` form is removed in 1.14), no DNS rule uses
  // the deprecated `outbound` item, and every server tag named elsewhere exists.
  const dns = doc.dns as Json | undefined;
  if (dns !== undefined) {
    const servers = dns.servers as Json[];
    const dnsTags = new Set(servers.map((x) => String(x.tag)));
    for (const x of servers) {
      assert.ok(
        ['local', 'tcp', 'udp', 'tls', 'https'].includes(String(x.type)),
        `dns server ${String(x.tag)}: type`,
      );
      assert.equal(x.address, undefined, `dns server ${String(x.tag)}: no legacy address`);
      if (x.type !== 'local') assert.equal(typeof x.server, 'string', `dns server ${String(x.tag)}: server`);
      if (x.detour !== undefined)
        assert.ok(tags.has(String(x.detour)), `dns detour ${String(x.detour)} exists`);
    }
    for (const r of (dns.rules as Json[] | undefined) ?? [])
      assert.equal(r.outbound, undefined, 'no outbound DNS rule');
    if (dns.final !== undefined) assert.ok(dnsTags.has(String(dns.final)), 'dns.final exists');
    if (route.default_domain_resolver !== undefined)
      assert.ok(dnsTags.has(String(route.default_domain_resolver)), 'route.default_domain_resolver exists');
  }
  return ss;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function checkSip008(body: string): {
  servers: Json[];
  bytes_used?: number;
  bytes_remaining?: number;
} {
  const doc = JSON.parse(body) as Json;
  assert.equal(doc.version, 1);
  assert.ok(Array.isArray(doc.servers));
  for (const s of doc.servers as Json[]) {
    assert.match(String(s.id), UUID);
    for (const k of ['remarks', 'server', 'password', 'method']) assert.equal(typeof s[k], 'string', k);
    assert.ok(Number.isInteger(s.server_port));
    if (s.plugin_opts !== undefined) assert.equal(typeof s.plugin, 'string');
  }
  if (doc.bytes_remaining !== undefined)
    assert.equal(typeof doc.bytes_used, 'number', 'bytes_remaining needs bytes_used');
  return doc as { servers: Json[] };
}

/** SIP003 plugin options from a clash plugin-opts map, as ss-local's --plugin-opts takes them. */
export function clashPluginOpts(o: Json): string {
  const parts = ['mode=websocket', `host=${String(o.host)}`, `path=${String(o.path)}`];
  if (o.tls === true) parts.push('tls');
  if (o.mux !== undefined) parts.push(`mux=${o.mux ? 1 : 0}`);
  if (o['v2ray-http-upgrade'] === true) parts.push('v2ray-http-upgrade');
  return parts.join(';');
}
