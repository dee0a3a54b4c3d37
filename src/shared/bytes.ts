/**
 * A byte count for people, in the largest binary unit it fills ("2.00 GiB", "97.66 KiB", "1 B"):
 * the one unit helper of the subscription page, the refusal messages and `ladder keys`, so an
 * operator and a key's user read the same figure.
 */
export function formatBinaryBytes(n: number): string {
  const units = ['GiB', 'MiB', 'KiB'] as const;
  for (let i = 0; i < units.length; i++) {
    const size = 2 ** (30 - 10 * i);
    if (n >= size) return `${(n / size).toFixed(2)} ${units[i]}`;
  }
  return `${n} B`;
}
