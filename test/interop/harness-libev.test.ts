// Harness self-check: shadowsocks-libev on both ends. If this fails, the fixtures or the SOCKS5
// client are wrong, not Ladder. One cipher keeps it cheap; the Ladder pairings cover all three.
import { interopSuite, useFixtures } from './matrix.js';

const fx = useFixtures();
interopSuite('libev', 'libev', 'chacha20-ietf-poly1305', fx);
