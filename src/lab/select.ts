/**
 * `lab run --only`: which contenders a list of names picks. Contender names contain commas
 * ("ladder AEAD, no shaping"), so each value is first taken whole: a name (case-insensitive),
 * else a part of names; only a value that is neither is split on commas into such parts (the
 * older "no shaping,CDN" form). The flag may be repeated.
 */
export type Selection<T> =
  { readonly ok: true; readonly selected: T[] } | { readonly ok: false; readonly error: string };

export function selectContenders<T extends { readonly name: string }>(
  all: readonly T[],
  only: readonly string[],
): Selection<T> {
  const pick = (want: string): T[] => {
    const w = want.trim().toLowerCase();
    if (w === '') return [];
    const exact = all.filter((c) => c.name.toLowerCase() === w);
    return exact.length ? exact : all.filter((c) => c.name.toLowerCase().includes(w));
  };
  const chosen = new Set<T>();
  for (const value of only) {
    const found = pick(value);
    if (found.length === 0 && value.includes(',')) {
      for (const part of value.split(',').filter((p) => p.trim() !== '')) {
        const got = pick(part);
        if (got.length === 0) return unknown(all, part);
        found.push(...got);
      }
    }
    if (found.length === 0) return unknown(all, value);
    for (const c of found) chosen.add(c);
  }
  return { ok: true, selected: all.filter((c) => chosen.has(c)) };
}

function unknown<T extends { readonly name: string }>(all: readonly T[], value: string): Selection<T> {
  const names = all.map((c) => JSON.stringify(c.name)).join(', ');
  return {
    ok: false,
    error: `--only ${JSON.stringify(value.trim())} matches no contender; the names: ${names}`,
  };
}
