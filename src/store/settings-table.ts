/** The server settings of the Kysely store: one JSON value per name in the `settings` table. */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { compiledOnce } from './compiled.js';
import { num, numOrNull } from './rows.js';
import type { Database } from './schema.js';
import type { StoreOptions } from './store-options.js';
import type { ServerSettings } from './types.js';

type Db = Kysely<Database>;

const SETTING_DEFAULTS = {
  name: 'Ladder Server',
  hostnameForAccessKeys: '127.0.0.1',
  metricsEnabled: false,
  accessKeyDataLimitBytes: null,
  dynamicKeyBaseUrl: null,
  reportKeys: 3,
  reportWindowSeconds: 600,
} as const;

/** Insert the settings a new store starts with (in the caller's transaction); present ones stay. */
export async function initSettings(
  trx: Db,
  now: number,
  defaults: NonNullable<StoreOptions['defaults']>,
): Promise<void> {
  const rows = await trx.selectFrom('settings').select('name').execute();
  const have = new Set(rows.map((r) => r.name));
  const initial: Record<string, unknown> = {
    serverId: randomUUID(),
    createdTimestampMs: now,
    name: defaults.name ?? SETTING_DEFAULTS.name,
    hostnameForAccessKeys: defaults.hostname ?? SETTING_DEFAULTS.hostnameForAccessKeys,
    portForNewAccessKeys: defaults.port ?? 1024 + Math.floor(Math.random() * (65535 - 1024)),
    metricsEnabled: SETTING_DEFAULTS.metricsEnabled,
    accessKeyDataLimitBytes: SETTING_DEFAULTS.accessKeyDataLimitBytes,
    apiPrefix: randomBytes(16).toString('base64url'),
    dynamicKeyBaseUrl: SETTING_DEFAULTS.dynamicKeyBaseUrl,
    apiPort: null,
    nextKeyId: 0,
  };
  const missing = Object.entries(initial).filter(([k]) => !have.has(k));
  if (missing.length > 0) {
    await trx
      .insertInto('settings')
      .values(missing.map(([name, value]) => ({ name, value: JSON.stringify(value) })))
      .execute();
  }
}

export async function readSettings(db: Db): Promise<ServerSettings> {
  // Compiled once per database (compiled.ts): the key enforcer reads the settings every 2 s.
  const query = compiledOnce(db, 'settings.all', () => db.selectFrom('settings').selectAll());
  const { rows } = await db.executeQuery(query);
  const m = new Map(rows.map((r) => [r.name, JSON.parse(r.value) as unknown]));
  return {
    serverId: String(m.get('serverId')),
    createdTimestampMs: num(m.get('createdTimestampMs')),
    name: String(m.get('name') ?? SETTING_DEFAULTS.name),
    hostnameForAccessKeys: String(m.get('hostnameForAccessKeys') ?? SETTING_DEFAULTS.hostnameForAccessKeys),
    portForNewAccessKeys: num(m.get('portForNewAccessKeys')),
    metricsEnabled: m.get('metricsEnabled') === true,
    accessKeyDataLimitBytes: numOrNull(m.get('accessKeyDataLimitBytes')),
    apiPrefix: String(m.get('apiPrefix')),
    apiPort: numOrNull(m.get('apiPort')),
    dynamicKeyBaseUrl: (m.get('dynamicKeyBaseUrl') as string | null | undefined) ?? null,
    reportKeys: num(m.get('reportKeys') ?? SETTING_DEFAULTS.reportKeys),
    reportWindowSeconds: num(m.get('reportWindowSeconds') ?? SETTING_DEFAULTS.reportWindowSeconds),
  };
}

/** Insert or replace each setting (in the caller's transaction). */
export async function writeSettings(trx: Db, entries: readonly [string, unknown][]): Promise<void> {
  for (const [name, value] of entries) {
    await trx
      .insertInto('settings')
      .values({ name, value: JSON.stringify(value) })
      .onConflict((oc) => oc.column('name').doUpdateSet({ value: JSON.stringify(value) }))
      .execute();
  }
}

/**
 * The server identity key of `method` (a setting), made with `generate` the first time. The
 * insert-if-absent runs in `tx`: whoever inserted first wins, everyone gets that key.
 */
export async function identityKey(
  db: Db,
  tx: <T>(fn: (trx: Db) => Promise<T>) => Promise<T>,
  method: string,
  generate: () => string,
): Promise<string> {
  const name = `identityKey/${method}`;
  const have = await db.selectFrom('settings').select('value').where('name', '=', name).executeTakeFirst();
  if (have) return String(JSON.parse(have.value));
  return tx(async (trx) => {
    await trx
      .insertInto('settings')
      .values({ name, value: JSON.stringify(generate()) })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();
    const row = await trx
      .selectFrom('settings')
      .select('value')
      .where('name', '=', name)
      .executeTakeFirstOrThrow();
    return String(JSON.parse(row.value));
  });
}
