/**
 * A Ladder server or client process for the SIP022 and UDP benchmarks: the data plane and the
 * client started directly (no CLI banner or store), so only the relays are measured. Runs until
 * SIGTERM.
 *
 *   node --import tsx bench/sip022-node.ts server --port P --method M --password PW [--udp]
 *   node --import tsx bench/sip022-node.ts client --server-port P --method M --password PW --socks-port S
 */
import { startClient } from '../src/client/index.js';
import { createUdpAssociate } from '../src/client/udp-associate.js';
import { startDataPlane } from '../src/server/index.js';

function arg(name: string): string {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  if (v === undefined) throw new Error(`missing ${name}`);
  return v;
}

const role = process.argv[2];
const method = arg('--method');
const password = arg('--password');
let close: () => Promise<void>;
if (role === 'server') {
  const plane = await startDataPlane({
    keys: [{ id: 'bench', method, secret: password }],
    port: Number(arg('--port')),
    host: '127.0.0.1',
    allowPrivateDestinations: true,
    udp: process.argv.includes('--udp'),
  });
  if (plane.server.rejectedKeys.length > 0) throw new Error(plane.server.rejectedKeys[0]!.reason);
  close = () => plane.close();
} else if (role === 'client') {
  const server = { host: '127.0.0.1', port: Number(arg('--server-port')), method, password };
  const udpAssociate = createUdpAssociate({ server });
  const client = await startClient({ key: server, socks: `127.0.0.1:${arg('--socks-port')}`, udpAssociate });
  close = async () => {
    udpAssociate.closeAll();
    await client.close();
  };
} else {
  throw new Error('role: server or client');
}
process.stdout.write('ready\n');
process.once('SIGTERM', () => {
  void close().finally(() => process.exit(0));
});
