// Keeping method line ids attached to their lines while the operator edits, so a save can tell
// the engine which lines changed (SetMethod.line_ids) and the editor can refuse edits to lines
// that have started.

/** One edited region: old lines a0..a1 became new lines b0..b1 (1-based, inclusive). */
export interface LineRange {
  a0: number;
  a1: number;
  b0: number;
  b1: number;
}

/** Merge regions that share a line (several changes on one line, or on adjacent ends). */
export function mergeRanges(ranges: readonly LineRange[]): LineRange[] {
  const out: LineRange[] = [];
  for (const r of [...ranges].sort((x, y) => x.a0 - y.a0)) {
    const last = out[out.length - 1];
    if (last && r.a0 <= last.a1) {
      last.a1 = Math.max(last.a1, r.a1);
      last.b1 = Math.max(last.b1, r.b1);
    } else out.push({ ...r });
  }
  return out;
}

/**
 * New line ids after an edit. Untouched lines keep theirs; inside an edited region, lines equal
 * at its start and its end keep theirs, the remaining ones pair up in order (an edited line keeps
 * its identity), and lines beyond that are new (null).
 */
export function remapLineIds(
  oldIds: readonly (string | null)[],
  oldText: (line: number) => string,
  newText: (line: number) => string,
  newCount: number,
  ranges: readonly LineRange[],
): (string | null)[] {
  const out: (string | null)[] = [];
  let oldLine = 1;
  for (const r of mergeRanges(ranges)) {
    for (; oldLine < r.a0; oldLine++) out.push(oldIds[oldLine - 1] ?? null);
    let a0 = r.a0;
    let a1 = r.a1;
    let b0 = r.b0;
    let b1 = r.b1;
    const head: (string | null)[] = [];
    const tail: (string | null)[] = [];
    while (a0 <= a1 && b0 <= b1 && oldText(a0) === newText(b0)) {
      head.push(oldIds[a0 - 1] ?? null);
      a0++;
      b0++;
    }
    while (a1 >= a0 && b1 >= b0 && oldText(a1) === newText(b1)) {
      tail.unshift(oldIds[a1 - 1] ?? null);
      a1--;
      b1--;
    }
    const middle: (string | null)[] = [];
    for (let k = 0; k <= b1 - b0; k++) middle.push(a0 + k <= a1 ? (oldIds[a0 + k - 1] ?? null) : null);
    out.push(...head, ...middle, ...tail);
    oldLine = r.a1 + 1;
  }
  for (; oldLine <= oldIds.length; oldLine++) out.push(oldIds[oldLine - 1] ?? null);
  // Defensive: the count must match the new document.
  while (out.length < newCount) out.push(null);
  out.length = newCount;
  return out;
}

/**
 * The first locked line an edit would change or remove, or null when the edit is allowed.
 * `locked` holds ids of lines that started or completed.
 */
export function violatedLock(
  oldIds: readonly (string | null)[],
  oldText: (line: number) => string,
  newIds: readonly (string | null)[],
  newText: (line: number) => string,
  locked: ReadonlySet<string>,
): { line: number; id: string } | null {
  if (locked.size === 0) return null;
  const where = new Map<string, number>();
  newIds.forEach((id, i) => {
    if (id !== null) where.set(id, i + 1);
  });
  for (let i = 0; i < oldIds.length; i++) {
    const id = oldIds[i];
    if (id == null || !locked.has(id)) continue;
    const j = where.get(id);
    if (j === undefined || newText(j) !== oldText(i + 1)) return { line: i + 1, id };
  }
  return null;
}
