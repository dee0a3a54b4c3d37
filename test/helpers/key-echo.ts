/** One echo through a Ladder client (SOCKS5 on a free loopback port) over a key: whether it came back byte-identical. */
import { randomBytes } from 'node:crypto';
import { startClient } from '../../src/client/index.js';
import { endpointFromKey } from '../../src/client/key.js';
import { createLogger } from '../../src/shared/logger.js';
import { echoVia } from './transfer.js';

export async function echoesThroughKey(
  key: string,
  echoPort: number,
  bytes: number,
  timeoutMs: number,
): Promise<boolean> {
  const client = await startClient({
    keys: [endpointFromKey(key, 'local')],
    socks: { host: '127.0.0.1', port: 0 },
    log: createLogger({ level: 'silent' }),
  });
  try {
    const body = randomBytes(bytes);
    const r = await echoVia(
      { proxyPort: client.socksAddress!.port },
      { host: '127.0.0.1', port: echoPort },
      body,
      timeoutMs,
    );
    return r.bytes === body.length && r.gotSha.equals(r.sentSha);
  } catch {
    return false;
  } finally {
    await client.close();
  }
}
