// Interop: `ladder client` (CLI) → shadowsocks-libev's ss-server, all four SIP004 ciphers.
import { METHODS } from '../helpers/peers.js';
import { interopSuite, useFixtures } from './matrix.js';

const fx = useFixtures();
for (const method of METHODS) interopSuite('ladder', 'libev', method, fx);
