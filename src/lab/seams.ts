/**
 * Seams for the behaviours the lab does not emulate yet (docs/glossary.md): C5, the QUIC
 * Initial SNI filter, and C8, the encapsulated-TLS (TLS-in-TLS) classifier. An implementation
 * plugs into the Censor through these interfaces; the censor already provides what they need
 * (the UDP 4-tuple flow table with 60 s idle expiry and the "first datagram of the flow" flag,
 * the residual table keyed on the 3-tuple, per-direction chunk sizes of every TCP flow, and the
 * feed into C1). With no implementation, a profile that enables C5 or C8 records one
 * "not-emulated" decision and passes the traffic.
 */
import type { FlowRef } from './decision-log.js';

export type SeamVerdict =
  | { readonly action: 'PASS'; readonly features?: Readonly<Record<string, unknown>> }
  /** Drop every later datagram on (cIP, sIP, sPort) for residualMs (the QUIC residual is 180 s). */
  | {
      readonly action: 'DROP_3TUPLE';
      readonly residualMs: number;
      readonly features: Readonly<Record<string, unknown>>;
    };

/** C5: look at client->server UDP datagrams. */
export interface UdpFlowInspector {
  readonly behaviour: 'C5';
  /**
   * @param firstOfFlow true when no datagram opened this 4-tuple in the last 60 s (only those
   *        are inspected by the measured GFW).
   * @param outbound the client address is on the censored side.
   */
  inspect(flow: FlowRef, datagram: Buffer, firstOfFlow: boolean, outbound: boolean): SeamVerdict;
}

export type ShapeVerdict =
  | { readonly action: 'PASS' }
  | { readonly action: 'FLAG'; readonly features: Readonly<Record<string, unknown>> };

/** C8: see the (direction, size) sequence of each TCP flow, chunk by chunk. */
export interface FlowShapeClassifier {
  readonly behaviour: 'C8';
  /** `chunk`: the bytes themselves (a classifier may parse record headers, as an on-path censor can). */
  observe(flow: FlowRef, direction: 'c2s' | 's2c', length: number, chunk?: Buffer): ShapeVerdict;
}

/** C8 feeds C1 when one endpoint collects `threshold` flags within `windowMs` (K = 3 in 10 min). */
export const C8_FLAG_THRESHOLD = 3;
export const C8_FLAG_WINDOW_MS = 10 * 60_000;
