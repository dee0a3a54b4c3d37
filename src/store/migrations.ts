import { Migrator, PostgresAdapter, sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';
import { isStoreUnavailable } from './health.js';
import { STORE_TABLES } from './integrity.js';
import type { Database } from './schema.js';
import { PG_URL_UNREADABLE, StoreError } from './types.js';

/**
 * Schema migrations, kept in code (no directory scan) so they ship inside dist/ and run the same on
 * SQLite and PostgreSQL. Append new entries; never edit one that has shipped.
 */
const MIGRATIONS: Record<string, Migration> = {
  '0001_init': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('keys')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('method', 'text', (c) => c.notNull())
        .addColumn('secret', 'text', (c) => c.notNull())
        .addColumn('port', 'integer', (c) => c.notNull())
        .addColumn('data_limit_bytes', 'bigint')
        .addColumn('limit_period', 'text', (c) => c.notNull().defaultTo('rolling30d'))
        .addColumn('expires_at', 'bigint')
        .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
        .addColumn('access_token', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_seen_at', 'bigint')
        // Insertion order, for listing keys the way Outline does (oldest first).
        .addColumn('seq', 'bigint', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema
        .createTable('usage')
        .addColumn('key_id', 'text', (c) => c.notNull())
        .addColumn('bucket', 'bigint', (c) => c.notNull())
        .addColumn('up_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('down_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
        .addPrimaryKeyConstraint('usage_pk', ['key_id', 'bucket'])
        .execute();
      await db.schema.createIndex('usage_bucket_idx').on('usage').column('bucket').execute();
      await db.schema
        .createTable('settings')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('value', 'text', (c) => c.notNull())
        .execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable('settings').execute();
      await db.schema.dropTable('usage').execute();
      await db.schema.dropTable('keys').execute();
    },
  },
  // Per-key Outline `prefix` setting (issue 13): 'auto' (drawn per dynamic-key fetch), 'off', or the
  // pinned bytes as lowercase hex. Existing keys become 'auto'.
  '0002_key_prefix': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .alterTable('keys')
        .addColumn('prefix', 'text', (c) => c.notNull().defaultTo('auto'))
        .execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('keys').dropColumn('prefix').execute();
    },
  },
  // Fleet nodes (issue 16). On PostgreSQL also the keys version: a sequence a statement trigger
  // advances and announces (NOTIFY ladder_keys, payload = the new version) in the same transaction
  // as any change of a key's configuration, so every node's listener hears it at commit. Usage
  // flushes touch only last_seen_at, which the trigger does not watch.
  '0003_nodes': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('nodes')
        .addColumn('name', 'text', (c) => c.primaryKey())
        // JSON array of public hosts (IP or DNS name), preferred first.
        .addColumn('addresses', 'text', (c) => c.notNull().defaultTo('[]'))
        .addColumn('port', 'integer', (c) => c.notNull())
        // JSON array of transports with their public parameters (nodes.ts NodeTransport).
        .addColumn('transports', 'text', (c) => c.notNull().defaultTo('[]'))
        .addColumn('version', 'text', (c) => c.notNull().defaultTo(''))
        // active | draining | blocked | suspected (set by operators or by blocked-address detection);
        // "down" is not stored: it is a heartbeat older than the bound.
        .addColumn('state', 'text', (c) => c.notNull().defaultTo('active'))
        .addColumn('state_reason', 'text')
        .addColumn('state_changed_at', 'bigint')
        // The running process that owns the name (random per start), against a name started twice.
        .addColumn('instance', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('started_at', 'bigint', (c) => c.notNull())
        .addColumn('heartbeat_at', 'bigint', (c) => c.notNull())
        .addColumn('keys_version', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('api_port', 'integer')
        .execute();
      if (!(db.getExecutor().adapter instanceof PostgresAdapter)) return;
      await sql`create sequence if not exists ladder_keys_version`.execute(db);
      await sql`
        create or replace function ladder_keys_changed() returns trigger language plpgsql as $$
        begin
          perform pg_notify('ladder_keys', nextval('ladder_keys_version')::text);
          return null;
        end $$`.execute(db);
      await sql`
        create trigger ladder_keys_changed
        after insert or delete or update of id, method, secret, port, data_limit_bytes, limit_period,
          expires_at, enabled, prefix
        on keys for each statement execute function ladder_keys_changed()`.execute(db);
    },
    async down(db: Kysely<unknown>): Promise<void> {
      if (db.getExecutor().adapter instanceof PostgresAdapter) {
        await sql`drop trigger if exists ladder_keys_changed on keys`.execute(db);
        await sql`drop function if exists ladder_keys_changed()`.execute(db);
        await sql`drop sequence if exists ladder_keys_version`.execute(db);
      }
      await db.schema.dropTable('nodes').execute();
    },
  },
  // Fleet-wide usage (issue 16): each writer (a node, see StoreOptions.writerId) numbers its usage
  // batches per run; the batch's row and its increments commit together, so a retried batch whose
  // commit was applied is a no-op. One row per writer run (its last seq): batches of a run commit
  // in order. usage.changed_at lets a node read only the usage rows that changed (on PostgreSQL,
  // stamped with the database's clock). Independent of other migrations' tables.
  '0004_usage_batches': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('usage_batches')
        .addColumn('writer', 'text', (c) => c.notNull())
        .addColumn('run', 'text', (c) => c.notNull())
        .addColumn('seq', 'bigint', (c) => c.notNull())
        .addColumn('committed_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('usage_batches_pk', ['writer', 'run'])
        .execute();
      await db.schema
        .alterTable('usage')
        .addColumn('changed_at', 'bigint', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema.createIndex('usage_changed_idx').on('usage').column('changed_at').execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropIndex('usage_changed_idx').execute();
      await db.schema.alterTable('usage').dropColumn('changed_at').execute();
      await db.schema.dropTable('usage_batches').execute();
    },
  },
  // Blocked-address detection (issue 16): clients that failed on one node's address and got
  // through another report it; one row per (node, address, key) with the time of the last report,
  // and never a client address. nodes.suspected_addresses (JSON array) holds the addresses that
  // enough distinct keys reported within the window; keys leave them out until an operator clears
  // them (unblock) or adds them again.
  '0005_address_reports': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('address_reports')
        .addColumn('node', 'text', (c) => c.notNull())
        .addColumn('address', 'text', (c) => c.notNull())
        .addColumn('key_id', 'text', (c) => c.notNull())
        .addColumn('reported_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('address_reports_pk', ['node', 'address', 'key_id'])
        .execute();
      await db.schema
        .alterTable('nodes')
        .addColumn('suspected_addresses', 'text', (c) => c.notNull().defaultTo('[]'))
        .execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('nodes').dropColumn('suspected_addresses').execute();
      await db.schema.dropTable('address_reports').execute();
    },
  },
  // Key changes read as deltas (issue 16/14): keys.version is the keys version of the change that
  // last touched the row's data-plane columns, key_tombstones the version of each deletion, so a
  // node reads only what changed since the version it applied (key-changes.ts). PostgreSQL: a
  // statement trigger takes a transaction-level advisory lock (key changes commit in version order,
  // so a reader never sees version v+1 without v) and draws one version per statement from
  // ladder_keys_version; row triggers stamp it; the NOTIFY announces that same version. SQLite (one
  // writer at a time): row triggers advance key_clock. Tombstones older than a day are pruned.
  '0006_key_versions': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .alterTable('keys')
        .addColumn('version', 'bigint', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema.createIndex('keys_version_idx').on('keys').column('version').execute();
      await db.schema
        .createTable('key_tombstones')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('version', 'bigint', (c) => c.notNull())
        .addColumn('deleted_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('key_tombstones_version_idx')
        .on('key_tombstones')
        .column('version')
        .execute();
      if (db.getExecutor().adapter instanceof PostgresAdapter) await keyVersionsPostgres(db);
      else await keyVersionsSqlite(db);
    },
    async down(db: Kysely<unknown>): Promise<void> {
      if (db.getExecutor().adapter instanceof PostgresAdapter) {
        await sql`drop trigger if exists ladder_keys_row on keys`.execute(db);
        await sql`drop trigger if exists ladder_keys_stamp on keys`.execute(db);
        await sql`drop function if exists ladder_keys_row()`.execute(db);
        await sql`drop function if exists ladder_keys_stamp()`.execute(db);
      } else {
        for (const t of ['ladder_keys_ins', 'ladder_keys_upd', 'ladder_keys_del'])
          await sql`drop trigger if exists ${sql.raw(t)}`.execute(db);
        await db.schema.dropTable('key_clock').execute();
      }
      await db.schema.dropTable('key_tombstones').execute();
      await db.schema.dropIndex('keys_version_idx').execute();
      await db.schema.alterTable('keys').dropColumn('version').execute();
    },
  },
  // Per-key device and speed limits (session 20, docs/limits.md): nullable integers, null = none.
  // Both are data-plane columns: a change must bump the key's version (0006) and wake the fleet
  // (0003's NOTIFY), so the triggers that watch columns are made again with them in the list.
  '0007_key_limits': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('keys').addColumn('device_limit', 'integer').execute();
      await db.schema.alterTable('keys').addColumn('speed_limit', 'bigint').execute();
      await watchColumns(db, WATCHED_0007);
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await watchColumns(db, WATCHED);
      await db.schema.alterTable('keys').dropColumn('speed_limit').execute();
      await db.schema.alterTable('keys').dropColumn('device_limit').execute();
    },
  },
};

/** The columns whose change a data plane must see (the NOTIFY trigger of 0003 watches the same). */
const WATCHED = sql.raw(
  'id, method, secret, port, data_limit_bytes, limit_period, expires_at, enabled, prefix',
);
/** WATCHED from migration 0007_key_limits on: the limits are data-plane columns too. */
const WATCHED_0007 = sql.raw(
  'id, method, secret, port, data_limit_bytes, limit_period, expires_at, enabled, prefix, device_limit, speed_limit',
);

/**
 * Make the triggers that fire on an update of `columns` again with that list (the functions they
 * call stay): PostgreSQL's NOTIFY (0003) and version stamps (0006), SQLite's version stamp (0006).
 */
async function watchColumns(db: Kysely<unknown>, columns: ReturnType<typeof sql.raw>): Promise<void> {
  if (db.getExecutor().adapter instanceof PostgresAdapter) {
    await sql`drop trigger if exists ladder_keys_changed on keys`.execute(db);
    await sql`
      create trigger ladder_keys_changed
      after insert or delete or update of ${columns}
      on keys for each statement execute function ladder_keys_changed()`.execute(db);
    await sql`drop trigger if exists ladder_keys_stamp on keys`.execute(db);
    await sql`
      create trigger ladder_keys_stamp
      before insert or delete or update of ${columns}
      on keys for each statement execute function ladder_keys_stamp()`.execute(db);
    await sql`drop trigger if exists ladder_keys_row on keys`.execute(db);
    await sql`
      create trigger ladder_keys_row
      before insert or delete or update of ${columns}
      on keys for each row execute function ladder_keys_row()`.execute(db);
    return;
  }
  await sql`drop trigger if exists ladder_keys_upd`.execute(db);
  await sqliteUpdateTrigger(db, columns);
}

/** SQLite (0006): an update of `columns` stamps the row with the next version (a rename leaves a tombstone). */
async function sqliteUpdateTrigger(db: Kysely<unknown>, columns: ReturnType<typeof sql.raw>): Promise<void> {
  await sql`
    create trigger ladder_keys_upd after update of ${columns} on keys begin
      update key_clock set v = v + 1;
      update keys set version = (select v from key_clock) where id = new.id;
      ${sqliteTombstone('old.id <> new.id')}
    end`.execute(db);
}

/** pg_advisory_xact_lock key for "a key change is being made" (any constant unique to Ladder). */
const KEY_CHANGE_LOCK = 0x1add3e;

async function keyVersionsPostgres(db: Kysely<unknown>): Promise<void> {
  await sql`
    create or replace function ladder_keys_stamp() returns trigger language plpgsql as $$
    begin
      perform pg_advisory_xact_lock(${sql.raw(String(KEY_CHANGE_LOCK))});
      perform set_config('ladder.keys_version', nextval('ladder_keys_version')::text, true);
      if tg_op = 'DELETE' then
        delete from key_tombstones
        where deleted_at < (extract(epoch from clock_timestamp()) * 1000)::bigint - 86400000;
      end if;
      return null;
    end $$`.execute(db);
  await sql`
    create trigger ladder_keys_stamp
    before insert or delete or update of ${WATCHED}
    on keys for each statement execute function ladder_keys_stamp()`.execute(db);
  await sql`
    create or replace function ladder_keys_row() returns trigger language plpgsql as $$
    declare v bigint := current_setting('ladder.keys_version')::bigint;
    begin
      if tg_op = 'DELETE' or (tg_op = 'UPDATE' and old.id <> new.id) then
        insert into key_tombstones (id, version, deleted_at)
        values (old.id, v, (extract(epoch from clock_timestamp()) * 1000)::bigint)
        on conflict (id) do update set version = excluded.version, deleted_at = excluded.deleted_at;
      end if;
      if tg_op = 'DELETE' then return old; end if;
      new.version := v;
      return new;
    end $$`.execute(db);
  await sql`
    create trigger ladder_keys_row
    before insert or delete or update of ${WATCHED}
    on keys for each row execute function ladder_keys_row()`.execute(db);
  // The NOTIFY (0003's statement trigger) now announces the version the rows were stamped with.
  await sql`
    create or replace function ladder_keys_changed() returns trigger language plpgsql as $$
    begin
      perform pg_notify('ladder_keys', current_setting('ladder.keys_version'));
      return null;
    end $$`.execute(db);
}

/** SQLite trigger step: a deleted id (or the old id of a renamed key) with the version of its removal. */
const sqliteTombstone = (when: string) => sql`
    insert into key_tombstones (id, version, deleted_at)
    select old.id, (select v from key_clock), cast(strftime('%s', 'now') as integer) * 1000
    where ${sql.raw(when)}
    on conflict (id) do update set version = excluded.version, deleted_at = excluded.deleted_at;`;

async function keyVersionsSqlite(db: Kysely<unknown>): Promise<void> {
  await sql`create table key_clock (id integer primary key check (id = 1), v integer not null)`.execute(db);
  await sql`insert into key_clock (id, v) values (1, 0)`.execute(db);
  await sql`
    create trigger ladder_keys_ins after insert on keys begin
      update key_clock set v = v + 1;
      update keys set version = (select v from key_clock) where id = new.id;
    end`.execute(db);
  await sqliteUpdateTrigger(db, WATCHED);
  await sql`
    create trigger ladder_keys_del after delete on keys begin
      update key_clock set v = v + 1;
      delete from key_tombstones where deleted_at < cast(strftime('%s', 'now') as integer) * 1000 - 86400000;
      ${sqliteTombstone('true')}
    end`.execute(db);
}

export const migrationProvider: MigrationProvider = {
  getMigrations: () => Promise.resolve(MIGRATIONS),
};

/** Each table answers a one-row read (cheap on both stores): what a dropped table or a damaged root page fails. */
export async function checkTables(db: Kysely<Database>): Promise<void> {
  for (const table of STORE_TABLES) await db.selectFrom(table).selectAll().limit(1).execute();
}

/** Run every migration not applied yet; an unreachable database is rethrown as it is. */
export async function migrate(db: Kysely<Database>): Promise<void> {
  const { error, results } = await new Migrator({ db, provider: migrationProvider }).migrateToLatest();
  if (!error) return;
  if (isStoreUnavailable(error)) throw error;
  const message = error instanceof Error ? error.message : String(error);
  const failed = results?.find((r) => r.status === 'Error')?.migrationName;
  if (failed !== undefined)
    throw new StoreError('STORE_OPEN_FAILED', `store: migration ${failed} failed: ${message}`);
  // No migration ran: the database refused us before (a login, a missing database, a lock).
  throw new StoreError('STORE_OPEN_FAILED', `store: ${refusalHint(error)}: ${message}`);
}

/** What PostgreSQL's refusal means for the operator, by its SQLSTATE (a login or a missing database) or node's code. */
function refusalHint(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (code === '28P01' || code === '28000')
    return 'the database refused the login (check the user and password in the store URL)';
  if (code === '3D000') return 'no such database (create it, or fix its name in the store URL)';
  // node-postgres could not parse the URL (its error leaves the URL out): most often a raw character.
  if (code === 'ERR_INVALID_URL') return PG_URL_UNREADABLE;
  return 'cannot prepare the database';
}
