import { readFileSync } from 'node:fs';
const m = process.argv[2];
if (m !== 'none') await import(m);
setTimeout(() => { const s = readFileSync('/proc/self/status', 'utf8'); console.log((/VmRSS:\s+(\d+)/.exec(s)[1] / 1024).toFixed(1), 'MiB heapUsed', (process.memoryUsage().heapUsed / 1048576).toFixed(1)); }, 1500);
