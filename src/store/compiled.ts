/**
 * Queries a server runs again and again while idle (the key enforcer's, every 2 s), compiled once
 * per database and run again with new parameter values. Compiling walks Kysely's operation tree
 * (its query compiler's visitNode, tens of calls per query); done every 2 s, that made V8 optimize
 * the visitor a few seconds after start, which paged in some 3.5 MiB of the optimizing compiler's
 * code (file-backed pages of the node binary) in a managed server that otherwise sits idle
 * (docs/benchmarks.md, "Managed server idle RSS"). No plugin is installed on the store's Kysely
 * instance, so a compiled query depends on nothing but its builder and the dialect.
 */
import type { Compilable, CompiledQuery } from 'kysely';

const byDb = new WeakMap<object, Map<string, CompiledQuery>>();

/**
 * The query `build()` compiles to, compiled on the first call for `db` and `name` only; with
 * `parameters`, the same SQL with these values (in the order the compiled query has them: build
 * it with placeholder values in the same places).
 */
export function compiledOnce<R>(
  db: object,
  name: string,
  build: () => Compilable<R>,
  parameters?: readonly unknown[],
): CompiledQuery<R> {
  let queries = byDb.get(db);
  if (!queries) byDb.set(db, (queries = new Map()));
  let q = queries.get(name) as CompiledQuery<R> | undefined;
  if (!q) {
    q = build().compile();
    queries.set(name, q);
  }
  if (parameters === undefined) return q;
  if (parameters.length !== q.parameters.length)
    throw new Error(`compiledOnce(${name}): ${parameters.length} parameters for ${q.parameters.length}`);
  return { ...q, parameters };
}
