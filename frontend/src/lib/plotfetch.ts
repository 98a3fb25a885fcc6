// Fetching plot data for many tags: one request normally; when the server refuses the set (a tag
// without data in this run), one request per tag, so the tags that have data still plot.

import type { PlotData } from "../types";

export async function fetchPlotTolerant(get: (tags: string[]) => Promise<PlotData>, tags: string[]): Promise<{ data: PlotData; missing: string[] }> {
  try {
    return { data: await get(tags), missing: [] };
  } catch (first) {
    if (tags.length <= 1) throw first;
  }
  const results = await Promise.allSettled(tags.map((t) => get([t])));
  const data: PlotData = { series: [], annotations: [] };
  const missing: string[] = [];
  const seenAnnotations = new Set<string>();
  results.forEach((r, i) => {
    if (r.status === "rejected") {
      missing.push(tags[i]!);
      return;
    }
    data.x_axis ??= r.value.x_axis;
    data.series.push(...r.value.series);
    for (const a of r.value.annotations ?? []) {
      const key = `${a.t}|${a.text}`;
      if (!seenAnnotations.has(key)) {
        seenAnnotations.add(key);
        data.annotations.push(a);
      }
    }
  });
  if (missing.length === tags.length) throw new Error(`no plot data for ${tags.join(", ")}`);
  return { data, missing };
}
