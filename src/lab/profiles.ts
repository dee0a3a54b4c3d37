/**
 * C11: named rule-set profiles (docs/glossary.md C11). A profile is the list of enabled
 * behaviours with their parameter values; tests and `ladder lab run` name a profile.
 */
import { domainRule } from './dns-inject.js';

export type RstInjector = 'I' | 'II' | 'III';

export interface EndpointBlock {
  readonly ip: string;
  /** Omitted: the whole IP. */
  readonly port?: number;
}

export interface CensorConfig {
  readonly name: string;
  readonly description: string;
  /** Address prefixes of the censored ("domestic") side; a flow is outbound if its client address matches. */
  readonly domestic: readonly string[];
  readonly c1: {
    readonly enabled: boolean;
    readonly blocked: readonly EndpointBlock[];
    /** DROP_S2C: forward nothing from the server (null-route); BLACKHOLE_NEW: never connect. */
    readonly action: 'DROP_S2C' | 'BLACKHOLE_NEW';
  };
  readonly c2: {
    readonly enabled: boolean;
    /** Regular expressions over the flattened QNAME (see dns-inject.ts). */
    readonly rules: readonly string[];
    /** Forged replies per query, one per enabled injector (1..3). */
    readonly injectors: number;
    /** DNS TTL per injector. */
    readonly ttls: readonly number[];
    /** Delay before the genuine answer is delivered (the race the forged answer wins). */
    readonly genuineDelayMs: number;
    readonly dropGenuine: boolean;
    /** Only inspect QCLASS IN (the patched injector). */
    readonly strictQclass: boolean;
    /** Ports on which UDP is inspected as DNS (logical port). */
    readonly ports: readonly number[];
  };
  readonly c3: {
    readonly enabled: boolean;
    /** Host suffixes (a name and its subdomains). */
    readonly hosts: readonly string[];
    /** Keywords searched in the %-decoded path and in the Host value. */
    readonly keywords: readonly string[];
    readonly pTrigger: number;
    readonly residualMs: number;
    /** Probability that a new connection during the residual is blocked (measured 0.5-0.75). */
    readonly pResidual: number;
  };
  readonly c4: {
    readonly enabled: boolean;
    /** Suffix-matched names, outbound list. */
    readonly names: readonly string[];
    /** Inbound list (a subset of the outbound one, as measured). */
    readonly namesInbound: readonly string[];
    /** false: parse the first TLS record only (GFW to April 2024); true: reassemble records. */
    readonly reassembleRecords: boolean;
    readonly injectDelayMs: number;
    readonly injector: RstInjector;
    readonly residualMs: number;
    /** ESNI (0xffce) rule: drop client->server, residual esniResidualMs. */
    readonly esni: boolean;
    readonly esniResidualMs: number;
  };
  readonly c5: { readonly enabled: boolean };
  readonly c6: {
    readonly enabled: boolean;
    /** 0.263 measured ("realistic"), 1 deterministic. */
    readonly pBlock: number;
    readonly residualMs: number;
    /** Deliver the triggering first chunk (the GFW is on-path: the packet it inspects has passed). */
    readonly dropTrigger: boolean;
    /** Monitored destination prefixes; empty = every foreign address. */
    readonly monitored: readonly string[];
    /** Highest TLS minor version byte accepted by Ex5 (paper 0x09, artifact 0x0F). */
    readonly tlsMaxMinor: number;
    /**
     * Capacity limit: with this many C6 residual blocks active, new ones last only
     * underLoadResidualMs (measured: ~40% lasted ~10 s with 500 ports blocked). 0 = off.
     */
    readonly underLoadThreshold: number;
    readonly underLoadResidualMs: number;
  };
  readonly c7: {
    readonly enabled: boolean;
    readonly minLength: number;
    readonly maxLength: number;
    /** Probabilistic trigger weighting by length mod 16 and entropy (false = probe every eligible flow). */
    readonly weighted: boolean;
    /** Cap on any drawn probe delay (compression of the measured 0.28 s .. 570 h CDF). */
    readonly maxDelayMs: number;
    /** How long the prober waits for a reaction before it closes first. */
    readonly timeoutMs: number;
    readonly confirmDelayMs: number;
    readonly scope: 'ip:port' | 'ip';
    readonly concurrency: number;
    /**
     * Without C6 (the 2020 profile) the passive stage forwards first packets with at least this
     * Shannon entropy (bits/byte). Measured: 7.2 was ~4x likelier to be replayed than 3.0; 6.5
     * keeps random payloads >= 160 bytes (~6.85) and drops TLS ClientHellos (~6).
     */
    readonly minEntropyWithoutFet: number;
  };
  readonly c8: { readonly enabled: boolean };
  readonly c9: {
    readonly enabled: boolean;
    readonly ports: readonly number[];
    /** Windows in virtual ms since the censor started; empty while enabled = always. */
    readonly windows: ReadonlyArray<{ readonly startMs: number; readonly endMs: number }>;
  };
  /** Regional stateless SNI/Host filter (Henan): each chunk alone, no residual, RST to the client. */
  readonly c10: {
    readonly enabled: boolean;
    /** Suffix-matched names (its list is larger and more volatile than the GFW's). */
    readonly names: readonly string[];
  };
  /**
   * HTTP block-page injection (not the GFW's way: Iran, Russian ISPs, Indonesia, Turkey, South
   * Korea): a plain-HTTP request for a listed host is dropped and a forged response (the block
   * page) goes to the client instead, then the connection is closed. No residual.
   */
  readonly c12: {
    readonly enabled: boolean;
    /** Host suffixes (a name and its subdomains). */
    readonly hosts: readonly string[];
    /** Status of the forged response (403 as Iran's; 302 would be a redirect to a block page). */
    readonly status: number;
  };
}

/** Names and keywords of the lab world's blocklists. */
export const LAB_BLOCKED_DOMAIN = 'blocked.lab';
export const LAB_OPEN_DOMAIN = 'open.lab';
export const LAB_KEYWORD = 'forbidden-keyword';

const OFF: CensorConfig = {
  name: 'none',
  description: 'No censorship: the control profile.',
  domestic: ['127.0.0.', '127.0.1.'],
  c1: { enabled: false, blocked: [], action: 'DROP_S2C' },
  c2: {
    enabled: false,
    rules: [domainRule(LAB_BLOCKED_DOMAIN)],
    injectors: 1,
    ttls: [60, 117, 208],
    genuineDelayMs: 50,
    dropGenuine: false,
    strictQclass: false,
    ports: [53],
  },
  c3: {
    enabled: false,
    hosts: [LAB_BLOCKED_DOMAIN],
    keywords: [LAB_KEYWORD],
    pTrigger: 0.75,
    residualMs: 90_000,
    pResidual: 0.75,
  },
  c4: {
    enabled: false,
    names: [LAB_BLOCKED_DOMAIN],
    namesInbound: [LAB_BLOCKED_DOMAIN],
    reassembleRecords: false,
    injectDelayMs: 18,
    injector: 'II',
    residualMs: 180_000,
    esni: true,
    esniResidualMs: 180_000,
  },
  c5: { enabled: false },
  c6: {
    enabled: false,
    pBlock: 0.263,
    residualMs: 180_000,
    dropTrigger: false,
    monitored: [],
    tlsMaxMinor: 0x09,
    underLoadThreshold: 0,
    underLoadResidualMs: 10_000,
  },
  c7: {
    enabled: false,
    minLength: 160,
    maxLength: 999,
    weighted: true,
    maxDelayMs: 15 * 60_000,
    timeoutMs: 10_000,
    confirmDelayMs: 0,
    scope: 'ip:port',
    concurrency: 4,
    minEntropyWithoutFet: 6.5,
  },
  c8: { enabled: false },
  c9: { enabled: false, ports: [443], windows: [] },
  c10: { enabled: false, names: [LAB_BLOCKED_DOMAIN] },
  c12: { enabled: false, hosts: [LAB_BLOCKED_DOMAIN], status: 403 },
};

type DeepPartial<T> = {
  -readonly [K in keyof T]?: T[K] extends readonly unknown[]
    ? T[K]
    : T[K] extends object
      ? DeepPartial<T[K]>
      : T[K];
};
export type CensorOverrides = DeepPartial<CensorConfig>;

export function withOverrides(base: CensorConfig, o: CensorOverrides): CensorConfig {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(o)) {
    const b = (base as unknown as Record<string, unknown>)[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' ? { ...b, ...v } : v;
  }
  return out as unknown as CensorConfig;
}

const on = { enabled: true } as const;

const LAB_DET = withOverrides(OFF, {
  name: 'lab-det',
  description:
    'The default for `ladder lab run`: every behaviour of the 2021-2023 GFW with each probability forced to 1 (first-record SNI parsing, as measured to April 2024).',
  c1: on,
  c2: on,
  c3: { enabled: true, pTrigger: 1, pResidual: 1 },
  c4: on,
  c6: { enabled: true, pBlock: 1 },
  c7: { enabled: true, weighted: false },
});

const PROFILES: Readonly<Record<string, CensorConfig>> = {
  none: OFF,
  'gfw-2020-ss': withOverrides(OFF, {
    name: 'gfw-2020-ss',
    description:
      'C1 + C2 + C3 + C4 + C7 with the length/entropy trigger only (no Ex rules, no FET blocking).',
    c1: on,
    c2: on,
    c3: on,
    c4: on,
    c7: on,
  }),
  'gfw-2021-2023-fet': withOverrides(OFF, {
    name: 'gfw-2021-2023-fet',
    description: 'gfw-2020-ss + C6 fully-encrypted-traffic blocking (p = 0.263, residual 180 s).',
    c1: on,
    c2: on,
    c3: on,
    c4: on,
    c6: on,
    c7: on,
  }),
  'gfw-2024-quic': withOverrides(OFF, {
    name: 'gfw-2024-quic',
    description: 'gfw-2021-2023-fet + C5 QUIC Initial SNI filter (C5 is a seam: not emulated yet).',
    c1: on,
    c2: on,
    c3: on,
    c4: on,
    c5: on,
    c6: on,
    c7: on,
  }),
  'gfw-2025-strict': withOverrides(OFF, {
    name: 'gfw-2025-strict',
    description:
      'Deterministic: C1, C2, C3 and C4 with p = 1 and TLS-record reassembly on, C6 with p = 1, C7 probing every eligible flow.',
    c1: on,
    c2: on,
    c3: { enabled: true, pTrigger: 1, pResidual: 1 },
    c4: { enabled: true, reassembleRecords: true },
    c5: on,
    c6: { enabled: true, pBlock: 1 },
    c7: { enabled: true, weighted: false },
  }),
  'lab-det': LAB_DET,
  'lab-det-henan': withOverrides(LAB_DET, {
    name: 'lab-det-henan',
    description:
      'lab-det plus C10, the regional stateless SNI/Host filter in front of the GFW (no reassembly, no residual, client-only RST).',
    c10: on,
  }),
  'blanket-443': withOverrides(OFF, {
    name: 'blanket-443',
    description:
      'C9 only: every new TCP connection to port 443 is reset (the 20 Aug 2025 event), for the whole run.',
    c9: { enabled: true, ports: [443], windows: [] },
  }),
  'blanket-except-443': withOverrides(OFF, {
    name: 'blanket-except-443',
    description:
      'C9 the other way round (the issue-12 event): every new TCP connection to the lab ports other than 443 (80, 8388, 8443) is reset; only TCP/443 passes.',
    c1: on,
    c9: { enabled: true, ports: [80, 8388, 8443], windows: [] },
  }),
  advanced: withOverrides(OFF, {
    name: 'advanced',
    description:
      'gfw-2025-strict + C8 TLS-in-TLS classifier (hypothetical; parameters are ours: c8-tls-in-tls.ts).',
    c1: on,
    c2: on,
    c3: { enabled: true, pTrigger: 1, pResidual: 1 },
    c4: { enabled: true, reassembleRecords: true },
    c6: { enabled: true, pBlock: 1 },
    c7: { enabled: true, weighted: false },
    c8: on,
  }),
};

export const DEFAULT_PROFILE = 'lab-det';

export function profileNames(): string[] {
  return Object.keys(PROFILES);
}

/** A fresh copy of a named profile with optional overrides; throws a clear error for unknown names. */
export function profile(name: string, overrides: CensorOverrides = {}): CensorConfig {
  const p = PROFILES[name];
  if (!p) throw new RangeError(`unknown lab profile "${name}" (known: ${profileNames().join(', ')})`);
  return withOverrides(p, overrides);
}
