import { describe, expect, it } from "vitest";
import { SeriesBuffer } from "./plotdata";
import { fullRange, heldIndex, holdTo, latestValue, plotFrame } from "./plotframe";
import type { PlotData } from "../types";

const T0 = 1000; // run start, epoch s

/** A stored run as GET /api/units/{id}/plot answers: Run Time every second, PT01 steady from 2 s. */
function stored(until: number): PlotData {
  const t = Array.from({ length: until + 1 }, (_, i) => T0 + i);
  return {
    series: [
      { tag: "Run Time", t, run_time: t.map((x) => x - T0), v: t.map((x) => x - T0) },
      { tag: "PT01", t: [T0, T0 + 1, T0 + 2], run_time: [0, 1, 2], v: [0.1, 2, 3.94] },
      { tag: "UV01", t: [T0], run_time: [0], v: [0] },
    ],
    annotations: [],
  };
}

describe("holdTo (the value stays until it changes)", () => {
  it("repeats the last value at the time drawn to", () => {
    expect(holdTo({ t: [1, 2], v: [5, 7] }, 10)).toEqual({ t: [1, 2, 10], v: [5, 7, 7] });
  });
  it("adds nothing when the series already reaches it, is empty, or nothing is known", () => {
    const s = { t: [1, 2], v: [5, 7] };
    expect(holdTo(s, 2)).toBe(s);
    expect(holdTo({ t: [], v: [] }, 5)).toEqual({ t: [], v: [] });
    expect(holdTo(s, null)).toBe(s);
  });
});

describe("plotFrame", () => {
  it("holds a steady tag to now while the run goes on (the newest sample of any tag)", () => {
    const b = new SeriesBuffer(1000);
    b.seed(stored(5));
    b.append("Run Time", T0 + 26, 26);
    const f = plotFrame(b, ["PT01", "UV01"], "Run Time");
    expect(f.until).toBe(T0 + 26);
    expect(f.x.at(-1)).toBe(26);
    const pt = f.ys.get("PT01")!;
    expect(latestValue(pt)).toBe(3.94);
    expect(pt.at(-1)).toBe(3.94);
    expect(f.ys.get("UV01")!.at(-1)).toBe(0);
  });
  it("holds to the run's end once it has stopped, Run Time going on after its last sample", () => {
    const b = new SeriesBuffer(1000);
    b.setEnd(T0 + 7.5);
    b.seed(stored(5));
    const f = plotFrame(b, ["PT01"], "Run Time");
    expect(f.until).toBe(T0 + 7.5);
    expect(f.x.at(-1)).toBeCloseTo(7.5, 9);
    expect(f.ys.get("PT01")!.at(-1)).toBe(3.94);
  });
  it("puts every tag of every subplot on one x, so their ranges cannot differ", () => {
    const b = new SeriesBuffer(1000);
    b.seed(stored(3));
    const f = plotFrame(b, ["UV01", "PT01"], "Run Time");
    expect(f.ys.get("UV01")!.length).toBe(f.x.length);
    expect(f.ys.get("PT01")!.length).toBe(f.x.length);
    expect(fullRange(f)).toEqual({ min: 0, max: 3 });
  });
});

describe("x-axis conversion", () => {
  const buffer = () => {
    const b = new SeriesBuffer(1000);
    b.seed({
      series: [
        { tag: "Run Time", t: [T0, T0 + 10], run_time: [0, 10], v: [0, 10] },
        { tag: "Accumulated Volume", t: [T0, T0 + 10], run_time: [0, 10], v: [0, 2] },
        { tag: "Accumulated CV", t: [T0, T0 + 10], run_time: [0, 10], v: [0, 0.5] },
        { tag: "FT01", t: [T0, T0 + 5, T0 + 20], run_time: [0, 5, 20], v: [1, 2, 3] },
      ],
      annotations: [],
    });
    return b;
  };
  it("maps sample times to Run Time, which goes on as a clock after its last sample", () => {
    expect(plotFrame(buffer(), ["FT01"], "Run Time").x).toEqual([0, 5, 20]);
  });
  it("maps sample times to a volume, which stays at its last value", () => {
    const f = plotFrame(buffer(), ["FT01"], "Accumulated Volume");
    expect(f.x).toEqual([0, 1, 2]);
    expect(f.ys.get("FT01")).toEqual([1, 2, 3]);
    expect(plotFrame(buffer(), ["FT01"], "Accumulated CV").x).toEqual([0, 0.25, 0.5]);
  });
  it("uses the clock while the x tag has no samples", () => {
    const b = new SeriesBuffer(1000);
    b.append("FT01", T0, 1);
    const f = plotFrame(b, ["FT01"], "Accumulated Volume");
    expect(f.clock).toBe(true);
    expect(f.x).toEqual([T0]);
  });
});

describe("data merging: fetched history and live samples", () => {
  it("keeps live samples newer than what storage returned, and the stored ones before", () => {
    const b = new SeriesBuffer(1000);
    // Live samples arrive at scan rate while the fetch is on its way; the first two are also stored.
    for (const [t, v] of [[T0 + 1, 2], [T0 + 1.5, 2.5], [T0 + 2, 3.94], [T0 + 2.1, 3.94]] as const) b.append("PT01", t, v);
    b.seed(stored(2));
    expect(b.get("PT01")).toEqual({ t: [T0, T0 + 1, T0 + 2, T0 + 2.1], v: [0.1, 2, 3.94, 3.94] });
  });
  it("treats a live copy of a stored sample (time rounded by storage) as the same sample", () => {
    const b = new SeriesBuffer(1000);
    b.append("PT01", T0 + 2 + 1.2e-6, 3.94);
    b.seed(stored(2));
    expect(b.get("PT01")!.t).toEqual([T0, T0 + 1, T0 + 2]);
  });
  it("a second fetch replaces live samples it covers and keeps the newer ones", () => {
    const b = new SeriesBuffer(1000);
    b.seed(stored(2));
    b.append("Run Time", T0 + 2.5, 2.5); // between two stored samples: not stored
    b.append("Run Time", T0 + 3.15, 3.15);
    b.seed(stored(3));
    expect(b.get("Run Time")!.t).toEqual([T0, T0 + 1, T0 + 2, T0 + 3, T0 + 3.15]);
  });
  it("keeps the run's end across a fetch and forgets it when cleared for a new run", () => {
    const b = new SeriesBuffer(1000);
    b.setEnd(T0 + 9);
    b.seed(stored(2));
    expect(b.until()).toBe(T0 + 9);
    b.clear();
    expect(b.until()).toBeNull();
  });
});

describe("legend values", () => {
  it("under the cursor: the sample in force there; off the plot: the latest", () => {
    const col = [1, null, null, 4, null];
    expect(heldIndex(col, 2)).toBe(0);
    expect(heldIndex(col, 3)).toBe(3);
    expect(heldIndex([null, 2], 0)).toBeNull();
    expect(latestValue(col)).toBe(4);
    expect(latestValue([])).toBeNull();
  });
});
