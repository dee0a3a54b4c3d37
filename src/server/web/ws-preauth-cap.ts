/**
 * What a WebSocket that has not authenticated can make the server hold. The ws library gathers a
 * message whole before handing it on (up to its maxPayload, 4 MiB: websocket.ts), so anyone with
 * the secret path could park 4 MiB per connection in a message it never finishes, and a message
 * announced over 4 MiB got a close frame 1009 at once: a reaction of its own, where every other
 * input gets the Shadowsocks server's one reaction (research D6; Xray's and v2ray's servers read
 * a message as a stream and hold nothing either).
 *
 * The gate sits between the socket and ws until the connection authenticates (a key verified
 * its first stream, or a Mux.Cool session's): it reads the frame headers as they pass, and a data
 * frame that takes the message in progress past `cap` is not handed to ws. From there on the
 * connection is drained: data frames are read and dropped, control frames (ping, close) still go
 * to ws, which answers them as on any connection. The Shadowsocks server gets nothing more and
 * reacts as to any input that is not a request (no bytes back, open until the peer closes or the
 * pre-relay deadline). A frame ws refuses (RSV bits set, a reserved opcode, no mask: RFC 6455
 * §5.2, §5.1) still goes to ws while draining, header and all, so it closes the connection with
 * 1002 as it does on any other connection and as other WebSocket servers do; the frames dropped
 * before it were whole, so ws reads it at a frame boundary. Once the connection authenticates, ws
 * reads the socket directly again.
 */
import type { Socket } from 'node:net';
import type WebSocket from 'ws';

/**
 * The largest message a WebSocket may send before it authenticates. A client's first message is
 * its first write (salt, request header and the first data: Outline and v2ray-plugin under 17
 * KiB, Xray under 8 KiB, a Mux.Cool frame under 64 KiB, Ladder's client at most one socket read,
 * 64 KiB, sealed); the margin covers a message a client sends on before its first was verified.
 */
export const PRE_AUTH_MESSAGE_CAP = 256 * 1024;

export interface PreAuthGate {
  /** The connection authenticated: everything goes to ws from now on (idempotent). */
  authenticated(): void;
  /** A message went over the cap: the connection is drained. */
  readonly draining: boolean;
}

type DataListener = (this: Socket, chunk: Buffer) => void;

interface FrameHeader {
  opcode: number;
  /** Payload length (imprecise above 2^53: such a frame is drained to the end anyway). */
  length: number;
  /** Header bytes, mask included. */
  size: number;
  /**
   * A frame ws refuses whatever comes before it: RSV bits (no extension is negotiated:
   * websocket.ts), a reserved opcode (3-7, 0xB-0xF), or no mask (a client's frames are masked).
   */
  refused: boolean;
}

/** Opcodes RFC 6455 §5.2 defines: continuation, text, binary, close, ping, pong. */
const KNOWN_OPCODES = new Set([0x0, 0x1, 0x2, 0x8, 0x9, 0xa]);

/** The frame header at `i` (RFC 6455 §5.2), or undefined when `b` ends inside it. */
function frameHeader(b: Buffer, i: number): FrameHeader | undefined {
  if (b.length - i < 2) return undefined;
  const opcode = b[i]! & 0x0f;
  let length = b[i + 1]! & 0x7f;
  let size = 2;
  if (length === 126) {
    if (b.length - i < 4) return undefined;
    length = b.readUInt16BE(i + 2);
    size = 4;
  } else if (length === 127) {
    if (b.length - i < 10) return undefined;
    length = b.readUInt32BE(i + 2) * 2 ** 32 + b.readUInt32BE(i + 6);
    size = 10;
  }
  const masked = (b[i + 1]! & 0x80) !== 0;
  if (masked) size += 4;
  const refused = (b[i]! & 0x70) !== 0 || !KNOWN_OPCODES.has(opcode) || !masked;
  return b.length - i < size ? undefined : { opcode, length, size, refused };
}

/** Put the gate in front of `ws`'s socket (call right after the upgrade, before any data flows). */
export function gatePreAuthMessages(ws: WebSocket, cap = PRE_AUTH_MESSAGE_CAP): PreAuthGate {
  const socket = (ws as unknown as { _socket: Socket | null })._socket;
  const state = { draining: false };
  if (!socket) return { authenticated: () => {}, draining: false };
  const inner = socket.listeners('data') as DataListener[];
  for (const l of inner) socket.removeListener('data', l);
  let stopped = false; // ws ended its reading (its own error): nothing more is handed to it
  ws.once('error', () => (stopped = true));
  const forward = (b: Buffer): void => {
    if (b.length > 0 && !stopped) for (const l of inner) l.call(socket, b);
  };
  let open = false;
  let inGate = false;
  let carry: Buffer | undefined; // a frame header cut by the chunk's end
  let held: Buffer | undefined; // from an over-cap frame on, while the verdict is awaited
  let payloadLeft = 0;
  let payloadKept = true; // the current frame's payload goes to ws
  let messageBytes = 0;

  const direct = (): void => {
    // Authenticated between frames or inside one ws already has the start of: ws reads on.
    socket.removeListener('data', gate);
    for (const l of inner) socket.on('data', l);
  };

  /**
   * An over-cap frame before authentication: the messages before it may still authenticate the
   * stream (the Shadowsocks server reads them a tick later, once the dialect is decided), so the
   * socket waits one turn with the rest of this chunk held; then ws reads on, or it drains.
   */
  const awaitVerdict = (rest: Buffer): void => {
    held = rest;
    socket.pause();
    setImmediate(() => {
      const b = held!;
      held = undefined;
      if (socket.destroyed) return; // ws saw the close: nothing more to hand it
      if (!open) state.draining = true;
      gate(b);
      if (!socket.destroyed) socket.resume();
    });
  };

  const gate = (chunk: Buffer): void => {
    if (held) return void (held = Buffer.concat([held, chunk]));
    const b = carry ? Buffer.concat([carry, chunk]) : chunk;
    carry = undefined;
    inGate = true;
    let from = 0; // bytes in [from, i) are still to be handed to ws
    let i = 0;
    try {
      while (i < b.length && !(open && !state.draining)) {
        if (payloadLeft > 0) {
          const n = Math.min(payloadLeft, b.length - i);
          if (!payloadKept) {
            forward(b.subarray(from, i));
            from = i + n;
          }
          i += n;
          payloadLeft -= n;
          continue;
        }
        const h = frameHeader(b, i);
        if (!h) {
          forward(b.subarray(from, i));
          carry = Buffer.from(b.subarray(i)); // a copy: at most 14 bytes
          from = b.length;
          break;
        }
        if (h.refused) {
          // ws closes with 1002 on this header: it gets it (and what follows) as on any connection.
          payloadKept = true;
          i += h.size;
          payloadLeft = h.length;
          continue;
        }
        const data = h.opcode < 8;
        const total = data ? (h.opcode === 0 ? messageBytes : 0) + h.length : messageBytes;
        if (data && !state.draining && total > cap) {
          // Everything before this frame first: a stream may authenticate on it.
          forward(b.subarray(from, i));
          from = i;
          if (open) break;
          awaitVerdict(b.subarray(i));
          return;
        }
        messageBytes = total;
        payloadKept = !(data && state.draining);
        if (!payloadKept) {
          forward(b.subarray(from, i));
          from = i + h.size;
        }
        i += h.size;
        payloadLeft = h.length;
      }
      if (open && !state.draining) {
        forward(b.subarray(from));
        // A frame header cut by the chunk's end, when the bytes before it authenticated the
        // stream: ws gets it before it reads the socket itself (it would be lost otherwise).
        if (carry) forward(carry);
        carry = undefined;
        direct();
      } else forward(b.subarray(from, Math.max(from, i)));
    } finally {
      inGate = false;
    }
  };
  socket.on('data', gate);

  return {
    authenticated() {
      if (open) return;
      open = true;
      // Verified only after an over-cap message was dropped: that stream has lost bytes and
      // would hang; it is closed instead (a genuine client's, so no prober sees this).
      if (state.draining && !inGate && !held) return void socket.destroy();
      if (inGate || held || state.draining) return; // the gate hands over when it returns
      if (carry) forward(carry);
      carry = undefined;
      direct();
    },
    get draining() {
      return state.draining;
    },
  };
}
