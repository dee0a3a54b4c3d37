/**
 * ShadowTLS v3 codec shared by the server (src/server/shadowtls/) and the client dialer: record
 * splitting, the ClientHello session-id tag, ServerRandom and the TLS 1.3 check, the handshake-phase
 * XOR/tag and the tagged data records both ways. No sockets, timers or logs.
 */
export * from './record.js';
export * from './hmac.js';
export * from './hello.js';
export * from './framing.js';
