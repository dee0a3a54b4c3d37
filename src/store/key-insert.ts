/** Creating keys in the Kysely store: ids (explicit or from the counter), order, access tokens. */
import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import { checkedLimit, chunks, IN_CHUNK, num, rowToKey } from './rows.js';
import type { Database, KeysTable } from './schema.js';
import { writeSettings } from './settings-table.js';
import { StoreError, type KeyRecord, type NewKey } from './types.js';

/**
 * Insert `inputs` as new keys created at `now`, in the caller's write transaction `trx`, and
 * return them. Ids not given come from the `nextKeyId` counter (skipping ids in use); a given id
 * that exists, or appears twice, is a KEY_EXISTS StoreError.
 */
export async function insertKeys(
  trx: Kysely<Database>,
  postgres: boolean,
  inputs: readonly NewKey[],
  now: number,
): Promise<KeyRecord[]> {
  // Lock the id counter row first: concurrent creators (other connections of the pool, other
  // nodes sharing a PostgreSQL store) queue here. SQLite's BEGIN IMMEDIATE already serializes.
  const counterQuery = trx.selectFrom('settings').select('value').where('name', '=', 'nextKeyId');
  const counter = await (postgres ? counterQuery.forUpdate() : counterQuery).executeTakeFirst();
  const explicit = inputs.flatMap((i) => (i.id !== undefined ? [i.id] : []));
  if (new Set(explicit).size !== explicit.length) {
    throw new StoreError('KEY_EXISTS', 'store: the same key id appears twice in one request');
  }
  for (const part of chunks(explicit, IN_CHUNK)) {
    const taken = await trx.selectFrom('keys').select('id').where('id', 'in', part).executeTakeFirst();
    if (taken)
      throw new StoreError('KEY_EXISTS', `store: an access key with id "${taken.id}" already exists`);
  }
  let nextId = counter ? num(JSON.parse(counter.value)) : 0;
  const maxSeq = await trx
    .selectFrom('keys')
    .select((eb) => eb.fn.max('seq').as('m'))
    .executeTakeFirst();
  let seq = num(maxSeq?.m ?? 0);
  const reserved = new Set(explicit);
  const rows: KeysTable[] = [];
  for (const input of inputs) {
    let id = input.id;
    if (id === undefined) {
      for (let guard = 0; ; guard++) {
        const candidate = String(nextId++);
        if (reserved.has(candidate)) continue;
        const exists = await trx
          .selectFrom('keys')
          .select('id')
          .where('id', '=', candidate)
          .executeTakeFirst();
        if (!exists) {
          id = candidate;
          break;
        }
        if (guard > 1_000_000) throw new StoreError('KEY_EXISTS', 'store: no free key id');
      }
      reserved.add(id);
    }
    rows.push({
      id,
      name: input.name ?? '',
      method: input.method,
      secret: input.secret,
      port: input.port,
      data_limit_bytes: input.dataLimitBytes ?? null,
      limit_period: input.limitPeriod ?? 'rolling30d',
      expires_at: input.expiresAt ?? null,
      enabled: input.enabled === false ? 0 : 1,
      access_token: randomBytes(16).toString('base64url'),
      created_at: now,
      last_seen_at: null,
      seq: ++seq,
      prefix: input.prefix ?? 'auto',
      device_limit: checkedLimit('deviceLimit', input.deviceLimit),
      speed_limit: checkedLimit('speedLimit', input.speedLimit),
    });
  }
  for (const part of chunks(rows, 50)) await trx.insertInto('keys').values(part).execute();
  await writeSettings(trx, [['nextKeyId', nextId]]);
  return rows.map(rowToKey);
}
