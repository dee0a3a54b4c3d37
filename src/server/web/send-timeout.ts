/**
 * nginx's `send_timeout` (60 s by default) for the web front: a connection with bytes waiting to
 * go out that makes no progress for the timeout is closed. Progress is any change of what waits
 * (the socket's unwritten bytes, the queue of its handle and of the TCP socket under a TLS one) or
 * of how many bytes the kernel has taken from those handles (a partial write: the client read
 * something; the queues alone may look the same at two checks with bytes moved). A client that
 * reads, however slowly, keeps its connection, as on nginx (which also counts a write only when
 * the kernel takes bytes). WebSockets handed to the endpoints are not watched (their relay has
 * its own timeouts).
 */
import type { Duplex } from 'node:stream';

/** nginx's default send_timeout. */
export const SEND_TIMEOUT_MS = 60_000;

interface Handle {
  writeQueueSize?: number;
  /** Bytes handed to the handle so far (those still queued included). */
  bytesWritten?: number;
}
type Watched = Duplex & { _handle?: Handle | null; _parent?: { _handle?: Handle | null } | null };

const queued = (h: Handle | null | undefined): number => h?.writeQueueSize ?? 0;
/** Bytes the kernel has taken from `h`: only grows, so a write that completes always shows. */
const taken = (h: Handle | null | undefined): number => (h?.bytesWritten ?? 0) - queued(h);

/**
 * What waits to be sent on `s`, and how far the kernel has taken its bytes, as a signature; ''
 * when nothing waits. The queue sizes alone can repeat while bytes move (a reader taking one
 * chunk between two checks, the next chunk queued in its place): the counts cannot.
 */
function pending(s: Watched): string {
  const wl = s.writableLength;
  const own = s._handle;
  const under = s._parent?._handle;
  if (wl + queued(own) + queued(under) === 0) return '';
  return `${wl}/${queued(own)}/${queued(under)}/${taken(own)}/${taken(under)}`;
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
