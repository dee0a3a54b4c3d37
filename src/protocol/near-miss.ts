/**
 * "Did you mean" for names a user types (methods, options, rule types, config fields): pure, so
 * every layer that reads a name can suggest the one it is an obvious misspelling of.
 */

/** Optimal string alignment distance (Levenshtein with adjacent transpositions), case-insensitive. */
export function editDistance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  const d: number[][] = Array.from({ length: x.length + 1 }, (_, i) => [i]);
  for (let j = 1; j <= y.length; j++) d[0]![j] = j;
  for (let i = 1; i <= x.length; i++)
    for (let j = 1; j <= y.length; j++) {
      const cost = x[i - 1] === y[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && x[i - 1] === y[j - 2] && x[i - 2] === y[j - 1])
        v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  return d[x.length]![y.length]!;
}

/**
 * The candidate `name` is an obvious misspelling of, if any: the closest within 1 edit for names
 * of up to 3 letters, 2 for longer ones (and 3 for names of 12 letters or more, like methods).
 * Names longer than `maxLength` get no suggestion (a pasted value is not a typo of a name).
 */
export function nearMiss(name: string, candidates: Iterable<string>, maxLength = 40): string | undefined {
  if (name.length > maxLength) return undefined;
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const allowed = c.length <= 3 ? 1 : c.length < 12 ? 2 : 3;
    const dist = editDistance(name, c);
    if (name !== c && dist <= allowed && dist < bestD) [best, bestD] = [c, dist];
  }
  return best;
}

/** ` (did you mean X?)` when `name` is a misspelling of one of `candidates`, else ''. */
export function didYouMean(name: string, candidates: Iterable<string>, shown = (c: string) => c): string {
  const near = nearMiss(name, candidates);
  return near === undefined ? '' : ` (did you mean ${shown(near)}?)`;
}
