/**
 * nginx's `send_timeout` (60 s by default) for the web front: a connection with bytes waiting to
 * go out that makes no progress for the timeout is closed. Progress is any change of what waits:
 * the socket's unwritten bytes (a write completed) or the kernel-side queue of its handle, or of
 * the TCP socket under a TLS one (a partial write: the client read something). A client that
 * reads, however slowly, keeps its connection, as on nginx (which also counts a write only when
 * the kernel takes bytes). WebSockets handed to the endpoints are not watched (their relay has
 * its own timeouts).
 */
import type { Duplex } from 'node:stream';

/** nginx's default send_timeout. */
export const SEND_TIMEOUT_MS = 60_000;

interface Handle {
  writeQueueSize?: number;
}
type Watched = Duplex & { _handle?: Handle | null; _parent?: { _handle?: Handle | null } | null };

/** What waits to be sent on `s`, as a signature; '' when nothing does. */
function pending(s: Watched): string {
  const wl = s.writableLength;
  const own = s._handle?.writeQueueSize ?? 0;
  const under = s._parent?._handle?.writeQueueSize ?? 0;
  return wl + own + under === 0 ? '' : `${wl}/${own}/${under}`;
}

/**
 * Check `sockets` every quarter of `timeoutMs`; destroy one whose pending bytes have not changed
 * for `timeoutMs` (so it goes between timeoutMs and 1.25 × timeoutMs without progress).
 */
export function watchSends(
  sockets: ReadonlySet<Duplex>,
  exempt: WeakSet<Duplex>,
  timeoutMs = SEND_TIMEOUT_MS,
): { stop(): void } {
  const seen = new WeakMap<Duplex, { sig: string; since: number }>();
  const timer = setInterval(
    () => {
      const now = Date.now();
      for (const s of sockets) {
        if (exempt.has(s) || s.destroyed) continue;
        const sig = pending(s as Watched);
        const last = seen.get(s);
        if (sig === '') seen.delete(s);
        else if (last?.sig !== sig) seen.set(s, { sig, since: now });
        else if (now - last.since >= timeoutMs) s.destroy();
      }
    },
    Math.max(10, timeoutMs / 4),
  );
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
