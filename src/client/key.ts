import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileErrorWhy } from '../config/errors.js';
import { escapeControls, ProtocolError } from '../protocol/errors.js';
import { getAeadMethod } from '../protocol/shadowsocks/methods.js';
import { checkMethod } from '../protocol/shadowsocks/key-material.js';
import {
  getAead2022Method,
  isAead2022MethodName,
  parsePsk2022,
} from '../protocol/shadowsocks/methods2022.js';
import { keyHostProblem, parseSsUrl, type SsKey } from '../protocol/sip002/index.js';
import { parseV2rayPluginOptions, V2RAY_PLUGIN_NAMES } from '../protocol/sip002/plugin-opts.js';
import { parseShadowTlsPluginOptions, SHADOW_TLS_PLUGIN_NAMES } from '../protocol/sip002/shadowtls-opts.js';
import type { ShadowTlsEndpoint } from '../transport/shadowtls-dialer.js';
import type { SsWebTransport } from '../protocol/sip002/transport.js';
import type { ShadowsocksEndpoint } from '../transport/shadowsocks-dialer.js';
import { UpstreamDialError, type NextHop } from '../transport/dialer.js';
import type { WsTransportOptions } from '../transport/ws-dialer.js';
import type { GrpcTransportOptions } from '../transport/grpc-dialer.js';
import type { SsKey as ParsedKey } from '../protocol/sip002/index.js';

/**
 * A tunnel endpoint from a key: the Shadowsocks endpoint, its tag, its WebSocket transport, and
 * whether UDP rides inside its streams as UDP-over-TCP of that version (the key's `uot=`).
 */
export type KeyEndpoint = ShadowsocksEndpoint & {
  tag?: string;
  websocket?: WsTransportOptions;
  /** The gRPC transport (a key's `type=grpc&serviceName=…`): ../transport/grpc-dialer.ts. */
  grpc?: GrpcTransportOptions;
  /** ShadowTLS v3 (a key's `plugin=shadow-tls;host=…;password=…;version=3`): ../transport/shadowtls-dialer.ts. */
  shadowTls?: ShadowTlsEndpoint;
  udpOverTcp?: 1 | 2;
  /** v2ray-plugin options this client does not use, one sentence each (for a warning at start). */
  pluginNotes?: string[];
};

/**
 * Turn an access key (ss:// URL) into a tunnel endpoint, refusing what we cannot honour: plugin
 * keys other than v2ray-plugin in websocket mode (whose wire we speak: its endpoint gets a
 * WebSocket `nextHop`, Mux.Cool unless mux=0), online-config keys (ssconf://, which
 * dynamic-key.ts fetches), stream ciphers and unknown methods. Every error is one line that says
 * what is wrong and never contains the password or the rest of the key. `from` is required: a
 * 'fetched' key's `cert=PATH` is ignored, a 'local' one's is read (KeySource).
 */
export function endpointFromKey(key: string, from: KeySource): KeyEndpoint {
  const text = key.trim();
  if (/^(ssconf|https?):\/\//i.test(text)) {
    throw new ProtocolError(
      'ERR_URL',
      'this is a dynamic (ssconf:// or https://) key: it is fetched when the client starts (ladder client --key), not read as an ss:// URL',
    );
  }
  let parsed;
  try {
    parsed = parseSsUrl(text);
  } catch (err) {
    // Belt and braces: the parser promises not to echo secrets; make sure no piece of the key
    // longer than a few characters appears in what we print.
    const msg = scrubKeySecrets(err instanceof Error ? err.message : String(err), text);
    throw new ProtocolError('ERR_URL', msg);
  }
  return endpointFromParts(parsed, (m) => `invalid ss:// URL: ${scrubKeySecrets(m, text)}`, from);
}

/**
 * The same checks for a key given as parts (an ss:// URL parsed, a SIP008 server entry, an
 * Outline legacy or YAML config). `explain` turns a checker's message into the line to show;
 * it must keep secrets out.
 */
/**
 * Where a key came from: the user ('local': the command line, a config file) or a server
 * ('fetched': a dynamic key or subscription). A fetched key may not name files on this machine:
 * its `cert=` is ignored with a note (a server must not choose what the client trusts).
 */
export type KeySource = 'local' | 'fetched';

export function endpointFromParts(
  parsed: SsKey,
  explain: (msg: string) => string,
  from: KeySource = 'local',
): KeyEndpoint {
  // A host from parts (SIP008 "server", an Outline endpoint) has not been through parseSsUrl.
  const hostProblem = keyHostProblem(parsed.host);
  if (hostProblem !== undefined) throw new ProtocolError('ERR_URL', explain(hostProblem));
  let websocket: WsTransportOptions | undefined;
  let pluginNotes: string[] | undefined;
  if (parsed.plugin !== undefined && V2RAY_PLUGIN_NAMES.has(parsed.plugin)) {
    let o;
    try {
      o = parseV2rayPluginOptions(parsed.pluginOptions);
    } catch (err) {
      throw new ProtocolError('ERR_URL', explain((err as Error).message));
    }
    const addr = parsed.host.includes(':') ? `[${parsed.host}]` : parsed.host;
    websocket = {
      url: `${o.tls ? 'wss' : 'ws'}://${addr}:${parsed.port}${o.path}`,
      host: o.host,
      mux: o.mux,
      ...(o.httpUpgrade ? { httpUpgrade: true } : {}),
      ...(o.httpUpgradeFastOpen ? { fastOpen: true } : {}),
      ...(o.cert !== undefined && from === 'local' ? { ca: trustedCa(o.cert) } : {}),
    };
    pluginNotes = o.notes;
    if (o.cert !== undefined && from === 'fetched')
      pluginNotes = [
        ...(pluginNotes ?? []),
        'option "cert" is ignored in a fetched key (it names a file here)',
      ];
  } else if (parsed.plugin !== undefined && SHADOW_TLS_PLUGIN_NAMES.has(parsed.plugin)) {
    // ShadowTLS: shadowTlsPart below; only its notes here.
    const notes = shadowTlsOptions(parsed, explain).notes;
    if (notes.length > 0) pluginNotes = notes;
  } else if (parsed.transport !== undefined && parsed.transport.type !== 'grpc') {
    websocket = webTransportOf(parsed, parsed.transport);
  } else if (parsed.plugin !== undefined) {
    throw new ProtocolError(
      'ERR_URL',
      `key uses the SIP003 plugin ${JSON.stringify(parsed.plugin.length > 40 ? `${parsed.plugin.slice(0, 40)}…` : parsed.plugin)}, which ladder does not support yet; ask for a key without a plugin`,
    );
  }
  // SIP022 keys: the password is base64 PSK(s); check them now so a bad key fails at startup.
  let method: { name: string; saltSize: number };
  try {
    checkMethod(parsed.method); // every method of both editions in its message
    if (isAead2022MethodName(parsed.method)) {
      method = getAead2022Method(parsed.method);
      parsePsk2022(getAead2022Method(parsed.method), parsed.password);
    } else {
      method = getAeadMethod(parsed.method);
    }
  } catch (err) {
    throw new ProtocolError('ERR_URL', explain((err as Error).message));
  }
  const prefix = parsed.prefix;
  if (prefix && prefix.length > method.saltSize) {
    throw new ProtocolError(
      'ERR_URL',
      explain(
        `prefix is ${prefix.length} bytes, longer than the ${method.saltSize}-byte salt of ${method.name}`,
      ),
    );
  }
  return {
    host: parsed.host,
    port: parsed.port,
    method: method.name,
    password: parsed.password,
    ...(prefix && prefix.length > 0 ? { prefix } : {}),
    ...(parsed.tag !== undefined ? { tag: parsed.tag } : {}),
    // HTTPUpgrade has no packet endpoint (Outline's /udp is a WebSocket one), nor has ShadowTLS (a
    // TCP port in front of the server): UDP rides in their streams.
    ...(parsed.uot !== undefined
      ? { udpOverTcp: parsed.uot }
      : websocket?.httpUpgrade || (parsed.plugin !== undefined && SHADOW_TLS_PLUGIN_NAMES.has(parsed.plugin))
        ? { udpOverTcp: 2 as const }
        : {}),
    ...(websocket ? { nextHop: lazyWebSocketNextHop(websocket), websocket } : {}),
    ...grpcPart(parsed),
    ...shadowTlsPart(parsed, explain),
    ...(pluginNotes ? { pluginNotes } : {}),
  };
}

/**
 * v2ray-plugin's `cert=PATH` on a client: the web front's certificate (self-signed) or its CA,
 * the certificates this endpoint's TLS trusts (in place of the public roots: one front, one
 * anchor, and no parse of the whole root store per connection; the name is still checked). Read
 * once, when the key is read; a missing file or one without a PEM certificate is one line naming
 * the option and the path.
 */
function trustedCa(path: string): string {
  const what = `v2ray-plugin option cert=${path.length > 200 ? `${path.slice(0, 200)}…` : path}`;
  let pem: string;
  try {
    pem = readFileSync(path, 'latin1');
  } catch (err) {
    throw new ProtocolError('ERR_URL', `${what}: ${fileErrorWhy(err)}`);
  }
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
  try {
    if (blocks.length === 0) throw new Error('none');
    for (const b of blocks) new X509Certificate(b);
  } catch {
    throw new ProtocolError('ERR_URL', `${what}: expected a PEM certificate (-----BEGIN CERTIFICATE-----)`);
  }
  return blocks.join('\n');
}

/** Candidate secrets in a key: the raw userinfo and the password as decoded either way. */
function secretsOf(key: string): string[] {
  const body = key
    .replace(/^ss:\/\//i, '')
    .split('#')[0]!
    .split('?')[0]!;
  const at = body.lastIndexOf('@');
  const userinfo = at === -1 ? body : body.slice(0, at);
  const out = [userinfo];
  const candidates = [userinfo];
  try {
    candidates.push(decodeURIComponent(userinfo));
  } catch {
    // not percent-encoded
  }
  candidates.push(Buffer.from(userinfo, 'base64').toString('latin1'));
  for (const c of candidates) {
    const colon = c.indexOf(':');
    if (colon !== -1) out.push(c.slice(colon + 1).split('@')[0]!);
  }
  return out.filter((s) => s.length >= 4).sort((a, b) => b.length - a.length);
}

/**
 * Replace any secret-looking piece of `key` that `msg` repeats, as it is or as `escapeControls`
 * printed it: a parser's message (a ProtocolError) has its control characters escaped already, so
 * a password holding one is repeated in its escaped form. Exported for its test.
 */
export function scrubKeySecrets(msg: string, key: string): string {
  let out = msg;
  const forms = secretsOf(key).flatMap((s) => [s, escapeControls(s)]);
  for (const s of forms.sort((a, b) => b.length - a.length))
    if (out.includes(s)) out = out.split(s).join('[redacted]');
  return out;
}

/**
 * The WebSocket or HTTPUpgrade transport of a key with `type=ws` or `type=httpupgrade` (3x-ui's
 * links for Xray's Shadowsocks inbounds): no Mux.Cool (an Xray client sends none unless told);
 * SNI from `sni`, else the Host header's name.
 */
function webTransportOf(parsed: SsKey, t: SsWebTransport): WsTransportOptions {
  const addr = parsed.host.includes(':') ? `[${parsed.host}]` : parsed.host;
  return {
    url: `${t.tls ? 'wss' : 'ws'}://${addr}:${parsed.port}${t.path}`,
    ...(t.host !== undefined ? { host: t.host } : {}),
    ...(t.sni !== undefined ? { servername: t.sni } : {}),
    mux: false,
    ...(t.type === 'httpupgrade' ? { httpUpgrade: true } : {}),
  };
}

/** The gRPC transport of a key with `type=grpc`: the options and a lazily loaded NextHop. */
function grpcPart(parsed: ParsedKey): { grpc?: GrpcTransportOptions; nextHop?: NextHop & { close(): void } } {
  const t = parsed.transport;
  if (t?.type !== 'grpc') return {};
  const grpc: GrpcTransportOptions = {
    address: parsed.host,
    port: parsed.port,
    tls: t.tls,
    serviceName: t.serviceName,
    ...(t.authority !== undefined ? { host: t.authority } : {}),
    ...(t.sni !== undefined ? { servername: t.sni } : {}),
  };
  return { grpc, nextHop: lazyGrpcNextHop(grpc) };
}

function shadowTlsOptions(
  parsed: ParsedKey,
  explain: (msg: string) => string,
): ReturnType<typeof parseShadowTlsPluginOptions> {
  try {
    return parseShadowTlsPluginOptions(parsed.pluginOptions);
  } catch (err) {
    throw new ProtocolError('ERR_URL', explain((err as Error).message));
  }
}

/** The ShadowTLS v3 transport of a key with `plugin=shadow-tls`: the endpoint and a lazily loaded NextHop. */
function shadowTlsPart(
  parsed: ParsedKey,
  explain: (msg: string) => string,
): { shadowTls?: ShadowTlsEndpoint; nextHop?: NextHop & { close(): void } } {
  if (parsed.plugin === undefined || !SHADOW_TLS_PLUGIN_NAMES.has(parsed.plugin)) return {};
  const o = shadowTlsOptions(parsed, explain);
  const shadowTls: ShadowTlsEndpoint = {
    address: parsed.host,
    port: parsed.port,
    sni: o.sni,
    password: o.password,
  };
  return {
    shadowTls,
    nextHop: lazyNextHop(() =>
      import('../transport/shadowtls-dialer.js').then((m) => m.shadowTlsNextHop(shadowTls)),
    ),
  };
}

/**
 * A NextHop whose transport module loads at the first dial rather than at start: a client whose
 * keys are all raw Shadowsocks never loads the WebSocket (`ws` package) or HTTP/2 code (idle memory).
 */
function lazyNextHop(load: () => Promise<NextHop & { close(): void }>): NextHop & { close(): void } {
  let hop: Promise<NextHop & { close(): void }> | undefined;
  let closed = false;
  const next: NextHop = async (signal) => {
    hop ??= load();
    const h = await hop;
    // Closed meanwhile: no connection that nothing would close.
    if (closed) throw new UpstreamDialError('ERR_ABORTED', 'client closed');
    return h(signal);
  };
  // The client's close reaches the pool through this (client/index.ts closeHops, picker.close):
  // without it the pooled connections kept a stopped client's process alive until their idle close.
  return Object.assign(next, {
    close: () => {
      closed = true;
      void hop?.then((h) => h.close());
    },
  });
}

/** webSocketNextHop, loaded at the first dial (lazyNextHop). */
export function lazyWebSocketNextHop(opts: WsTransportOptions): NextHop & { close(): void } {
  return lazyNextHop(() => import('../transport/ws-dialer.js').then((m) => m.webSocketNextHop(opts)));
}

/** grpcNextHop, loaded at the first dial (lazyNextHop). */
export function lazyGrpcNextHop(opts: GrpcTransportOptions): NextHop & { close(): void } {
  return lazyNextHop(() => import('../transport/grpc-dialer.js').then((m) => m.grpcNextHop(opts)));
}
