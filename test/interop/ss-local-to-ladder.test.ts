// Interop: shadowsocks-libev's ss-local (client) → `ladder server` (CLI), all four SIP004 ciphers.
import { METHODS } from '../helpers/peers.js';
import { interopSuite, useFixtures } from './matrix.js';

const fx = useFixtures();
for (const method of METHODS) interopSuite('libev', 'ladder', method, fx);
