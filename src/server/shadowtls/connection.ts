/**
 * One connection to the ShadowTLS v3 port (ihciah/shadow-tls docs/protocol-v3-en.md "Server-side";
 * SagerNet/sing-shadowtls service.go, version 3 in strict mode):
 *
 *  1. The handshake server (a real TLS 1.3 website) is dialled at the accept, so a prober that
 *     sends nothing meets that site's own timeouts.
 *  2. The client's first record must be a ClientHello whose session id carries the tag of one of
 *     the passwords (passwords.ts). Anything else (a wrong tag, no TLS, a record above 2^14 bytes) is forwarded
 *     and the connection becomes a plain TCP relay to the handshake server: a prober sees that
 *     site's certificate and pages. Before this decision at most one record (16 KiB) and one
 *     socket read are held.
 *  3. Authenticated: the ClientHello goes to the handshake server, whose first record must be a
 *     ServerHello selecting TLS 1.3 (else: plain relay); its ServerRandom keys the rest. The
 *     handshake server's later application-data records reach the client XORed and tagged
 *     (HandshakeTagger); the client's records go to the handshake server until one carries the
 *     HMAC_SR_C tag: the switch. The handshake server's connection is closed then (whole records
 *     only were forwarded), and the client's data records, as a Duplex, go to `onStream`.
 *
 * Nothing here logs an address, a password or a destination.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  DataOpener,
  HandshakeTagger,
  RecordReader,
  connectionHmac,
  matchFirstData,
  serverHelloSelectsTls13,
  serverRandomOf,
  RECORD_HEADER,
  TYPE_HANDSHAKE,
  type RunningHmac,
} from '../../protocol/shadowtls/index.js';
import { ShadowTlsStream } from '../../transport/shadowtls-stream.js';

/** A ClientHello record's body limit (RFC 8446 §5.1: a plaintext fragment is at most 2^14 bytes). */
const MAX_HELLO_BODY = 0x4000;

/** How a connection ended up: counted by the listener (tests and the debug log). */
export type ShadowTlsOutcome = 'switched' | 'relayed';

export interface ShadowTlsConnectionDeps {
  /** The password that signed this first record (passwords.ts), or undefined: relay it. */
  match(record: Buffer, remoteAddress: string | undefined): string | undefined;
  /** Open a TCP connection to the handshake server (already resolving its name). */
  dialHandshake(): Socket;
  /** An authenticated, switched connection: the Shadowsocks bytes. */
  onStream(stream: Duplex, remoteAddress: string | undefined, password: string): void;
  /** The connection's path, once decided. */
  onOutcome?(outcome: ShadowTlsOutcome): void;
  /** Whether a verified ClientHello record was seen before (replay.ts): then it is relayed as a wrong one. */
  replayed?(record: Buffer): boolean;
  /** Close a connection this long silent before the switch (both sides); 0: never. */
  idleMs: number;
}

type Phase = 'hello' | 'server-hello' | 'until-switch' | 'relay' | 'switched';

export function serveShadowTls(client: Socket, deps: ShadowTlsConnectionDeps): void {
  const remote = client.remoteAddress;
  let fromClient = new RecordReader(MAX_HELLO_BODY);
  let fromServer = new RecordReader();
  let phase: Phase = 'hello';
  let password = '';
  let hmacC: RunningHmac | undefined;
  let tagger: HandshakeTagger | undefined;
  let serverRandom: Buffer | undefined;
  let connected = false;
  let pendingToServer: Buffer[] = [];

  const hs = deps.dialHandshake();
  const closeBoth = (): void => {
    if (phase === 'switched') return;
    client.destroy();
    hs.destroy();
  };
  client.setNoDelay(true);
  hs.setNoDelay(true);
  if (deps.idleMs > 0) {
    client.setTimeout(deps.idleMs, closeBoth);
    hs.setTimeout(deps.idleMs, closeBoth);
  }

  const toServer = (b: Buffer): void => {
    if (!connected) {
      pendingToServer.push(b); // at most one record and one read: the client is paused
      client.pause();
      return;
    }
    if (!hs.write(b)) client.pause();
  };
  const toClient = (b: Buffer): void => {
    if (!client.write(b)) hs.pause();
  };
  const resumeClient = (): void => void client.resume();
  const resumeServer = (): void => void hs.resume();
  hs.on('drain', resumeClient);
  client.on('drain', resumeServer);

  /** Everything from here on is a plain TCP relay: what is held goes first. */
  const relay = (): void => {
    phase = 'relay';
    deps.onOutcome?.('relayed');
    if (fromClient.pending > 0) toServer(fromClient.drain());
    if (fromServer.pending > 0) toClient(fromServer.drain());
    if (connected) client.resume();
  };

  const onClientData = (chunk: Buffer): void => {
    if (phase === 'relay') return toServer(chunk);
    fromClient.push(chunk);
    if (phase === 'hello') return helloStep();
    if (phase === 'until-switch') return switchStep();
    // server-hello: hold the client (one record's worth) until the ServerHello comes.
    client.pause();
  };

  const helloStep = (): void => {
    const head = fromClient.peek(Math.min(fromClient.pending, RECORD_HEADER));
    if (head[0] !== TYPE_HANDSHAKE || (head.length >= 2 && head[1] !== 3)) return relay();
    let record: Buffer | undefined;
    try {
      record = fromClient.next();
    } catch {
      return relay(); // above 2^14: no ClientHello of ours
    }
    if (!record) return;
    let which = deps.match(record, remote);
    if (which !== undefined && deps.replayed?.(record)) which = undefined;
    toServer(record);
    if (which === undefined) return relay();
    password = which;
    phase = 'server-hello';
    // Data records carry up to 16384 + 4 bytes: the ClientHello's limit no longer applies.
    fromClient = prepend(undefined, fromClient);
    client.pause(); // nothing more from the client until the ServerHello is read
  };

  const onServerData = (chunk: Buffer): void => {
    if (phase === 'relay') return toClient(chunk);
    if (phase === 'switched') return;
    fromServer.push(chunk);
    for (;;) {
      let record: Buffer | undefined;
      try {
        record = fromServer.next();
      } catch {
        return relay();
      }
      if (!record) return;
      if (phase === 'hello') {
        // The handshake server spoke first (not a TLS server): stay its relay.
        fromServer = prepend(record, fromServer);
        return relay();
      }
      if (phase === 'server-hello') {
        serverRandom = serverRandomOf(record);
        if (!serverRandom || !serverHelloSelectsTls13(record)) {
          fromServer = prepend(record, fromServer);
          return relay();
        }
        toClient(record);
        hmacC = connectionHmac(password, serverRandom, 'C');
        tagger = new HandshakeTagger(password, serverRandom);
        phase = 'until-switch';
        client.resume();
        switchStep(); // client records that came meanwhile
        if (phase !== 'until-switch') return;
        continue;
      }
      toClient(tagger!.tag(record));
    }
  };

  const switchStep = (): void => {
    for (;;) {
      let record: Buffer | undefined;
      try {
        record = fromClient.next();
      } catch {
        return relay(); // cannot happen: no limit below the u16 one
      }
      if (!record) return;
      const first = matchFirstData(hmacC!, record);
      if (!first) {
        toServer(record);
        continue;
      }
      return switchOver(first);
    }
  };

  const switchOver = (first: Buffer): void => {
    phase = 'switched';
    deps.onOutcome?.('switched');
    hs.removeAllListeners('data');
    hs.on('error', () => {});
    hs.destroy();
    client.removeListener('data', onClientData);
    client.removeListener('end', onClientEnd);
    client.removeListener('error', onError);
    client.removeListener('close', onClose);
    client.removeListener('drain', resumeServer);
    client.setTimeout(0);
    const stream = new ShadowTlsStream(client, {
      held: fromClient.pending > 0 ? fromClient.drain() : undefined,
      first,
      opener: new DataOpener(hmacC!),
      seal: connectionHmac(password, serverRandom!, 'S'),
    });
    deps.onStream(stream, remote, password);
  };

  const onClientEnd = (): void => {
    if (phase === 'relay' && connected) hs.end();
    else if (phase !== 'switched') closeBoth();
  };
  const onError = (): void => closeBoth();
  const onClose = (): void => closeBoth();

  client.on('data', onClientData);
  client.on('end', onClientEnd);
  client.on('error', onError);
  client.on('close', onClose);
  hs.on('connect', () => {
    connected = true;
    const held = pendingToServer;
    pendingToServer = [];
    for (const b of held) toServer(b);
    if (phase === 'relay' || phase === 'hello') client.resume();
  });
  hs.on('data', onServerData);
  hs.on('end', () => {
    if (phase === 'relay') client.end();
    else if (phase !== 'switched') closeBoth();
  });
  // The site reset (or could not be reached): the prober gets a reset too, as from the site directly.
  hs.on('error', () => {
    if (phase !== 'switched' && !client.destroyed) client.resetAndDestroy();
    closeBoth();
  });
  hs.on('close', () => {
    if (phase !== 'switched') closeBoth();
  });
}

/**
 * A reader without the ClientHello's limit holding `record` (when given: one already taken out,
 * to relay it) before what `rest` holds.
 */
function prepend(record: Buffer | undefined, rest: RecordReader): RecordReader {
  const r = new RecordReader();
  if (record) r.push(record);
  if (rest.pending > 0) r.push(rest.drain());
  return r;
}
