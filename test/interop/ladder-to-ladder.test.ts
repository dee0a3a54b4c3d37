// End to end through both CLIs: `ladder client` → `ladder server`, all four SIP004 ciphers.
// Not interop with a third party (the libev pairings are), but it covers the two commands users
// run against each other, with the same 8 MiB byte-identity checks.
import { METHODS } from '../helpers/peers.js';
import { interopSuite, useFixtures } from './matrix.js';

const fx = useFixtures();
for (const method of METHODS) interopSuite('ladder', 'ladder', method, fx);
