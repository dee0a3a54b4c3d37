/**
 * Delta reads of the keys (migration 0006_key_versions): the rows whose keys version is above the
 * one a node applied, plus the tombstones of keys deleted since. Versions commit in order (the
 * PostgreSQL triggers serialize key changes; SQLite has one writer at a time), so the highest
 * version in one snapshot covers every change up to it.
 */
import { sql, type Kysely } from 'kysely';
import { num, rowToKey } from './rows.js';
import { compiledOnce } from './compiled.js';
import type { Database } from './schema.js';
import type { KeyChanges } from './types.js';

type Db = Kysely<Database>;

export async function readKeyChanges(
  db: Db,
  dialect: 'sqlite' | 'postgres',
  since: number | undefined,
): Promise<KeyChanges> {
  const tx = db.transaction();
  // Compiled once per database (compiled.ts): the enforcer runs these every 2 s.
  const rowsQuery = (after: number | undefined) =>
    after === undefined
      ? compiledOnce(db, 'keys.all', () => db.selectFrom('keys').selectAll().orderBy('seq').orderBy('id'))
      : compiledOnce(
          db,
          'keys.since',
          () => db.selectFrom('keys').selectAll().where('version', '>', 0).orderBy('seq').orderBy('id'),
          [after],
        );
  const tombsQuery = (after: number) =>
    compiledOnce(
      db,
      'tombstones.since',
      () => db.selectFrom('key_tombstones').select(['id', 'version']).where('version', '>', 0),
      [after],
    );
  const topQuery = compiledOnce(db, 'keys.version', () => ({
    compile: () =>
      sql<{ v: string | number | null }>`
      select max(v) as v from (select max(version) as v from keys
        union all select max(version) as v from key_tombstones) m`.compile(db),
  }));
  // One snapshot for the rows, the tombstones and the version (SQLite: a read transaction, WAL).
  return (dialect === 'postgres' ? tx.setIsolationLevel('repeatable read') : tx).execute(async (trx) => {
    const rows = (await trx.executeQuery(rowsQuery(since))).rows;
    const tombs = since === undefined ? [] : (await trx.executeQuery(tombsQuery(since))).rows;
    // The version of the snapshot: the highest stamped in it (tombstones included).
    const top = await trx.executeQuery(topQuery);
    const version = Math.max(since ?? 0, num(top.rows[0]?.v ?? 0));
    // A key deleted and created again after `since` is in both lists (deleted first, then
    // changed); a row its tombstone outdates is not a key any more.
    const tombVersion = new Map(tombs.map((t) => [t.id, num(t.version)]));
    return {
      version,
      full: since === undefined,
      changed: rows.filter((r) => num(r.version ?? 0) > (tombVersion.get(r.id) ?? -1)).map(rowToKey),
      deleted: [...tombVersion.keys()],
    };
  });
}
