// No import cycles between the modules of src/ (test files excluded). Edges are the relative
// specifiers of every `import`/`export … from` (type-only ones included: a type cycle still ties
// two modules' designs together) and of every dynamic `import()`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import ts from 'typescript';
import { REPO_ROOT, srcFiles } from './src-files.js';

/**
 * Cycles that exist on purpose for now, keyed by their files (sorted, joined with ' <-> '), each
 * with why and until when. Temporary: the test fails once an entry no longer matches a cycle, so
 * whoever cuts the cycle also deletes its line. Keep this the one place for exceptions.
 */
const KNOWN_CYCLES: Record<string, string> = {};

/** Repo-relative paths this file imports (relative specifiers only, `.js` -> `.ts`). */
export function importsOf(file: string, text: string): string[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const specs: string[] = [];
  const visit = (node: ts.Node): void => {
    if (
      (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    )
      specs.push(node.moduleSpecifier.text);
    else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] &&
      ts.isStringLiteralLike(node.arguments[0])
    )
      specs.push(node.arguments[0].text);
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return specs
    .filter((s) => s.startsWith('./') || s.startsWith('../'))
    .map((s) => posix.normalize(posix.join(posix.dirname(file), s)).replace(/\.js$/, '.ts'));
}

/** Every strongly connected set of two or more files (or a file importing itself), as one cycle each. */
export function findCycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  // Tarjan's algorithm, then one concrete path through each component.
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const strongConnect = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        strongConnect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const c: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      c.push(w);
    } while (w !== v);
    if (c.length > 1 || (graph.get(v) ?? []).includes(v)) components.push(c);
  };
  for (const v of graph.keys()) if (!index.has(v)) strongConnect(v);
  return components.map((c) => cyclePath(graph, new Set(c)));
}

/** A path start -> … -> start inside one strongly connected component. */
function cyclePath(graph: ReadonlyMap<string, readonly string[]>, members: Set<string>): string[] {
  const start = [...members].sort()[0]!;
  const seen = new Set<string>();
  const walk = (v: string, path: string[]): string[] | undefined => {
    for (const w of graph.get(v) ?? []) {
      if (!members.has(w)) continue;
      if (w === start) return [...path, start];
      if (seen.has(w)) continue;
      seen.add(w);
      const found = walk(w, [...path, w]);
      if (found) return found;
    }
    return undefined;
  };
  return walk(start, [start])!;
}

const cycleKey = (cycle: readonly string[]): string => [...new Set(cycle)].sort().join(' <-> ');

test('the cycle finder finds a cycle, names its path, and passes a DAG', () => {
  const g = new Map<string, string[]>([
    ['a', ['b']],
    ['b', ['c', 'd']],
    ['c', ['a']],
    ['d', []],
    ['e', ['e']],
  ]);
  const found = findCycles(g).map((c) => c.join(' -> '));
  assert.deepEqual(found.sort(), ['a -> b -> c -> a', 'e -> e']);
  assert.deepEqual(
    findCycles(
      new Map([
        ['x', ['y']],
        ['y', []],
      ]),
    ),
    [],
  );
  assert.deepEqual(
    importsOf(
      'src/server/x.ts',
      "import type { A } from './a.js';\nexport * from '../b/c.js';\nconst m = () => import('./d.js');\nimport z from 'pino';\n",
    ),
    ['src/server/a.ts', 'src/b/c.ts', 'src/server/d.ts'],
  );
});

function srcGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const f of srcFiles()) graph.set(f, importsOf(f, readFileSync(join(REPO_ROOT, f), 'utf8')));
  return graph;
}

test('no src/ module imports test code (test/helpers is not shipped in dist/)', () => {
  const bad = [...srcGraph()].flatMap(([f, deps]) =>
    deps.filter((d) => !d.startsWith('src/')).map((d) => `${f} -> ${d}`),
  );
  assert.deepEqual(bad, []);
});

test('no import cycles in src/ (test files excluded)', () => {
  const graph = srcGraph();
  assert.ok(graph.size > 50, `found only ${graph.size} files under src/`);
  const cycles = findCycles(graph);
  const unexpected = cycles.filter((c) => !(cycleKey(c) in KNOWN_CYCLES));
  assert.deepEqual(
    unexpected.map((c) => c.join(' -> ')),
    [],
    'import cycle(s) in src/: cut each by moving the shared part into a module both sides import',
  );
  const present = new Set(cycles.map(cycleKey));
  const stale = Object.keys(KNOWN_CYCLES).filter((k) => !present.has(k));
  assert.deepEqual(stale, [], 'these known cycles are gone: delete them from KNOWN_CYCLES in this file');
});
