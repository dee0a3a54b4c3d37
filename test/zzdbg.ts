import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { createInterface } from 'node:readline';
const N = Number(process.argv[2]);
const child = spawn('bash', ['-c', 'ulimit -n 128 && exec node --import tsx test/helpers/emfile-client.ts'], { stdio: ['pipe', 'pipe', 'inherit'] });
const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
const port = Number((await lines.next()).value);
const fd = () => readdirSync(`/proc/${child.pid}/fd`).length;
console.log('port', port, fd());
const socks: net.Socket[] = [];
for (let i = 0; i < N; i++) { const c = net.connect(port, '127.0.0.1'); c.on('error', (e) => console.log('err', i, e.message)); socks.push(c); }
await new Promise(r => setTimeout(r, 1000));
console.log('held', fd());
for (const c of socks) c.destroy();
for (let i = 0; i < 4; i++) { await new Promise(r => setTimeout(r, 300)); console.log(i, fd()); }
child.kill();
