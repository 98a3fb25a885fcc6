// Did-you-mean by edit distance: the same rule as the engine's analyzer (engine/lang/suggest.py),
// so a finding found here and the one the engine sends agree on the suggestion.

/** Edit distance counting a swap of two neighbours as one edit (optimal string alignment). */
export function distance(a: string, b: string): number {
  const rows: number[][] = [Array.from({ length: b.length + 1 }, (_, j) => j)];
  for (let i = 1; i <= a.length; i++) {
    const row = [i, ...new Array<number>(b.length).fill(0)];
    const prev = rows[i - 1]!;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, rows[i - 2]![j - 2]! + 1);
      row[j] = v;
    }
    rows.push(row);
  }
  return rows[a.length]![b.length]!;
}

/** The closest candidate if it is a plausible typo: a case-only difference, or at most a third of the word. */
export function suggest(word: string, candidates: Iterable<string>): string | null {
  let best: string | null = null;
  let bestScore = Infinity;
  const lowered = word.toLowerCase();
  const limit = Math.max(1, Math.floor(word.length / 3));
  for (const c of candidates) {
    if (c === word) continue;
    if (c.toLowerCase() === lowered) return c;
    if (Math.abs(c.length - word.length) > limit) continue;
    const score = distance(lowered, c.toLowerCase());
    if (score <= limit && score < word.length && score < bestScore) {
      best = c;
      bestScore = score;
    }
  }
  return best;
}
