// temporary (not committed): drive short connections through a running client at SOCKS port argv[2]
import { startEcho } from '../test/helpers/net.js';
import { oneExchange } from './exchange.js';
const socks = Number(process.argv[2]);
const n = Number(process.argv[3] ?? 3000);
const echo = await startEcho();
for (let i = 0; i < n; i++) await oneExchange(socks, echo);
await echo.close();
