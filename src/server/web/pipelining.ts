/**
 * A bound on the requests pipelined on one HTTP/1.1 connection that the decoy works on at once.
 *
 * Node stops reading a connection only when the responses it holds pass the socket's high-water
 * mark; a handler that answers later (the dir decoy's file lookups, the proxy decoy's upstream
 * requests) has written nothing yet when the next request is parsed, so a client that pipelines
 * requests without reading the answers was read without end: every request became an open file
 * or an upstream request in flight. One such connection took a server from 250 MB to over 900 MB
 * and 3,500 open files (dir decoy), or to 550 MB (proxy decoy), in six seconds.
 *
 * Here at most PIPELINE_DEPTH requests of a connection are being answered; later ones wait in
 * order (a closure each, nothing opened) and the connection is not read meanwhile. Every request
 * is still answered, in order, as nginx answers pipelined requests (one at a time): only the
 * reading waits.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** Requests of one connection being answered at once. */
export const PIPELINE_DEPTH = 8;

/**
 * The socket's handle (TCP or TLS). Node's HTTP parser reads it directly (consume), so neither
 * socket.pause() nor Node's own pause for pipelining stops the reading: only readStop() does.
 * `reading` stays true meanwhile, so Node's resume paths (socket.resume() on drain) leave the
 * handle stopped until we start it again.
 */
type HttpSocket = Socket & { _handle?: { readStop?(): number; readStart?(): number } | null };

interface Backlog {
  busy: number;
  waiting: Array<() => void>;
  /** Reading stopped by us. */
  held: boolean;
}

export function limitPipelining(
  handle: (req: IncomingMessage, res: ServerResponse) => void,
): (req: IncomingMessage, res: ServerResponse) => void {
  const backlogs = new WeakMap<Socket, Backlog>();
  return (req, res) => {
    const socket = req.socket as HttpSocket;
    let backlog = backlogs.get(socket);
    if (backlog === undefined) {
      const created: Backlog = { busy: 0, waiting: [], held: false };
      backlogs.set(socket, created);
      socket.once('close', () => (created.waiting.length = 0));
      backlog = created;
    }
    const b = backlog;
    const run = (): void => {
      if (socket.destroyed) return; // a queued request of a connection that has gone
      b.busy++;
      res.once('close', () => {
        b.busy--;
        const next = b.waiting.shift();
        if (next !== undefined) return next();
        if (b.held && !socket.destroyed) {
          b.held = false;
          socket._handle?.readStart?.();
        }
      });
      handle(req, res);
    };
    if (b.busy < PIPELINE_DEPTH) return run();
    b.waiting.push(run);
    if (!b.held) {
      b.held = true;
      socket._handle?.readStop?.();
    }
  };
}
