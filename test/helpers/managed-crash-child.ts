/**
 * A managed server's first start killed (SIGKILL) at a chosen point: `node --import tsx
 * managed-crash-child.ts DATA_DIR certificate|key PORT` starts one on DATA_DIR and PORT and kills itself right
 * after the start made its API certificate or the store's first key, as a crash (out of memory,
 * a power cut) would (test/api/first-start-crash.test.ts).
 */
import { startManaged } from '../../src/cli/managed.js';
import { silentLogger } from '../../src/shared/logger.js';
import { flags } from '../api/managed-helpers.js';

const [dataDir, at, port] = process.argv.slice(2);
await startManaged({ ...flags(dataDir!), port: port!, metrics: false }, silentLogger, {
  drawQr: false,
  made: (what) => {
    if (what === at) process.kill(process.pid, 'SIGKILL');
  },
});
console.error(`${at ?? '(none)'}: never reached`);
process.exit(1);
