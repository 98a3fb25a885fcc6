// WCAG contrast: UOD authors pick plot colours; text drawn in them must stay readable (AA, 4.5:1).

function channel(c: number): number {
  const s = c / 255;
  return s <= 0.03928 ? s / 12.92 : Math.pow((s + 0.055) / 1.055, 2.4);
}

export function parseHex(color: string): [number, number, number] | null {
  const m = /^#?([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(color.trim());
  if (!m || !m[1]) return null;
  const h = m[1].length === 3 ? [...m[1]].map((x) => x + x).join("") : m[1];
  return [parseInt(h.slice(0, 2), 16), parseInt(h.slice(2, 4), 16), parseInt(h.slice(4, 6), 16)];
}

export function luminance([r, g, b]: [number, number, number]): number {
  return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
}

export function contrastRatio(a: [number, number, number], b: [number, number, number]): number {
  const la = luminance(a);
  const lb = luminance(b);
  return (Math.max(la, lb) + 0.05) / (Math.min(la, lb) + 0.05);
}

/** The colour, darkened just enough to reach `ratio` against white; non-hex colours pass through. */
export function readableOnWhite(color: string, ratio = 4.5): string {
  const rgb = parseHex(color);
  if (!rgb) return color;
  const white: [number, number, number] = [255, 255, 255];
  let cur = rgb;
  for (let i = 0; i < 40 && contrastRatio(cur, white) < ratio; i++) {
    cur = cur.map((c) => Math.floor(c * 0.93)) as [number, number, number];
  }
  return `#${cur.map((c) => c.toString(16).padStart(2, "0")).join("")}`;
}
