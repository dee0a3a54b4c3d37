/**
 * A managed server's secret kept in its data dir (the web front's path, the ShadowTLS password):
 * the given one (then kept), else the kept one, else a new one from `make` (kept), so it stays the
 * same across restarts. Written owner-only.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export async function keptSecret(
  dataDir: string,
  fileName: string,
  given: string | undefined,
  make: () => string | Promise<string>,
): Promise<string> {
  const file = join(dataDir, fileName);
  const kept = await readFile(file, 'utf8').then(
    (t) => t.trim(),
    () => undefined,
  );
  if (given === undefined && kept) return kept;
  const value = given ?? (await make());
  if (value !== kept) {
    await mkdir(dataDir, { recursive: true });
    await writeFile(file, `${value}\n`, { mode: 0o600 });
  }
  return value;
}
