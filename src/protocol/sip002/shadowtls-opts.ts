/**
 * A key's ShadowTLS plugin: `ss://…@HOST:PORT?plugin=shadow-tls;host=SNI;password=PW;version=3`,
 * the SIP002 form Shadowrocket, Sub-Store and mihomo-based converters write for a Shadowsocks
 * node behind ShadowTLS (mihomo's `plugin: shadow-tls` with `plugin-opts: {host, password,
 * version}`). HOST:PORT is the ShadowTLS server, `host` the real website whose handshake it
 * relays (the SNI), `password` the ShadowTLS password (not the Shadowsocks one). Only version 3
 * is spoken; `fp`/`client-fingerprint` are accepted and ignored (the hello is always Chrome's shape).
 */
import { ProtocolError } from '../errors.js';
import { parsePluginOptions } from './plugin-opts.js';

/** The plugin names a key may use for ShadowTLS. */
export const SHADOW_TLS_PLUGIN_NAMES: ReadonlySet<string> = new Set(['shadow-tls', 'shadowtls']);

export interface ShadowTlsKeyOptions {
  /** The SNI: the website whose TLS handshake the server relays. */
  readonly sni: string;
  readonly password: string;
  /** Options read and not used, one sentence each. */
  readonly notes: string[];
}

const IGNORED = new Set(['fp', 'client-fingerprint']);
const KNOWN = ['host', 'password', 'version', ...IGNORED];

function bad(msg: string): ProtocolError {
  return new ProtocolError('ERR_URL', msg);
}

/** The options after `plugin=shadow-tls;`; a missing or bad field is one line naming it (never the password). */
export function parseShadowTlsPluginOptions(text: string | undefined): ShadowTlsKeyOptions {
  const o = parsePluginOptions(text ?? '');
  const value = (k: string): string | undefined => {
    const v = o.get(k);
    return v === true ? '' : v;
  };
  const notes: string[] = [];
  for (const name of o.keys()) {
    if (IGNORED.has(name))
      notes.push(`shadow-tls option "${name}" is ignored (the ClientHello is always Chrome-shaped)`);
    else if (!KNOWN.includes(name))
      notes.push(`shadow-tls option ${JSON.stringify(name.slice(0, 40))} is unknown; ignored`);
  }
  const version = value('version');
  if (version === undefined || version === '')
    throw bad(
      'shadow-tls plugin without version=: only ShadowTLS v3 is supported, add version=3 (a key without it means v2 to mihomo)',
    );
  if (version !== '3')
    throw bad(`shadow-tls version=${version.slice(0, 10)} is not supported (only version=3)`);
  const sni = value('host');
  if (!sni) throw bad('shadow-tls plugin without host= (the website whose TLS handshake the server relays)');
  if (!/^[A-Za-z0-9.-]+$/.test(sni) || sni.length > 253)
    throw bad(`shadow-tls host=${JSON.stringify(sni.slice(0, 60))} is not a DNS name`);
  const password = value('password');
  if (!password) throw bad('shadow-tls plugin without password= (the ShadowTLS password)');
  return { sni, password, notes };
}
