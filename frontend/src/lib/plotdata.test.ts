import { describe, expect, it } from "vitest";
import { SeriesBuffer, alignSeries, categoricalSpans, decimateMinMax, keepChanges, valuesAt } from "./plotdata";

describe("decimateMinMax", () => {
  it("keeps every peak and at most the requested number of points", () => {
    const t = Array.from({ length: 10_000 }, (_, i) => i);
    const v = t.map((i) => (i === 4321 ? 999 : i === 7777 ? -999 : Math.sin(i / 100)));
    const d = decimateMinMax({ t, v }, 200);
    expect(d.t.length).toBeLessThanOrEqual(200);
    expect(d.v).toContain(999);
    expect(d.v).toContain(-999);
    for (let i = 1; i < d.t.length; i++) expect(d.t[i]!).toBeGreaterThan(d.t[i - 1]!);
  });
  it("returns short series unchanged", () => {
    expect(decimateMinMax({ t: [1, 2], v: [3, 4] }, 10)).toEqual({ t: [1, 2], v: [3, 4] });
  });
});

describe("valuesAt", () => {
  it("interpolates the x tag, carries its last value, and is null before it", () => {
    const x = { t: [10, 20], v: [0, 100] };
    expect(valuesAt(x, [5, 10, 15, 20, 30])).toEqual([null, 0, 50, 100, 100]);
  });
});

describe("alignSeries", () => {
  it("merges series sampled at different times, with nulls where a series has no sample", () => {
    const a = alignSeries([{ t: [1, 3], v: [10, 30] }, { t: [2, 3], v: [200, 300] }], null);
    expect(a.x).toEqual([1, 2, 3]);
    expect(a.ys).toEqual([
      [10, null, 30],
      [null, 200, 300],
    ]);
  });
  it("maps time to another tag (a volume) and drops samples before it is known", () => {
    const vol = { t: [2, 4], v: [0, 1] };
    const a = alignSeries([{ t: [1, 2, 3, 4], v: [5, 6, 7, 8] }], vol);
    expect(a.x).toEqual([0, 0.5, 1]);
    expect(a.ys[0]).toEqual([6, 7, 8]);
    expect(a.t).toEqual([2, 3, 4]);
  });
  it("ignores text values in numeric series", () => {
    expect(alignSeries([{ t: [1], v: ["x"] }], null).ys[0]).toEqual([null]);
  });
});

describe("categoricalSpans", () => {
  it("turns changes of a text tag into spans ending at the next change", () => {
    const s = { t: [0, 5, 7, 9], v: ["VA01", "VA01", "VA03", "VA01"] };
    expect(categoricalSpans(s, 12)).toEqual([
      { from: 0, to: 7, value: "VA01" },
      { from: 7, to: 9, value: "VA03" },
      { from: 9, to: 12, value: "VA01" },
    ]);
  });
  it("keeps only changes", () => {
    expect(keepChanges({ t: [1, 2, 3], v: ["a", "a", "b"] })).toEqual({ t: [1, 3], v: ["a", "b"] });
  });
});

describe("SeriesBuffer", () => {
  it("seeds from server plot data, appends live samples, and records marks as annotations", () => {
    const b = new SeriesBuffer(100);
    b.seed({
      series: [{ tag: "FT01", t: [100, 101], run_time: [0, 1], v: [1, 2] }],
      annotations: [{ t: 100, run_time: 0, tag: "Mark", text: "start" }],
    });
    expect(b.get("Run Time")).toEqual({ t: [100, 101], v: [0, 1] });
    b.append("FT01", 102, 3);
    b.append("FT01", 101.5, 99); // replayed after an outage: stored, so drawn in its place
    b.append("FT01", 102, 4); // the same sample again: one point
    b.append("FT01", 102.0000002, 4); // its live copy, the time not rounded to the microsecond
    b.append("Mark", 102, "Load");
    expect(b.get("FT01")).toEqual({ t: [100, 101, 101.5, 102], v: [1, 2, 99, 4] });
    expect(b.marks().map((m) => m.text)).toEqual(["start", "Load"]);
  });
  it("stays bounded under a long run and keeps the extremes", () => {
    const b = new SeriesBuffer(1000);
    for (let i = 0; i < 20_000; i++) b.append("UV01", i, i === 123 ? 1e6 : i % 10);
    const s = b.get("UV01")!;
    expect(s.t.length).toBeLessThanOrEqual(1000);
    expect(s.v).toContain(1e6);
    expect(s.t.at(-1)).toBe(19_999);
  });
});

describe("SeriesBuffer.until", () => {
  it("holds a run going on to the newest scan heard of, a finished one to its end", () => {
    const b = new SeriesBuffer(100);
    expect(b.until()).toBeNull();
    b.setNow(99);
    expect(b.until()).toBe(99);
    b.append("FT01", 100, 1);
    expect(b.until()).toBe(100);
    b.setNow(100.7);
    b.setNow(100.2); // an older scan does not move "now" back
    expect(b.until()).toBe(100.7);
    b.seed({ series: [{ tag: "FT01", t: [100], run_time: [0], v: [1] }], annotations: [] });
    expect(b.until()).toBe(100.7);
    b.setEnd(105);
    expect(b.until()).toBe(105);
    b.clear();
    expect(b.until()).toBeNull();
  });

  it("takes the live time of the newest sample's scan for that sample, not a later moment", () => {
    const b = new SeriesBuffer(100);
    b.append("FT01", 100.1234562, 1); // the sample, heard live
    b.setNow(100.1234562);
    // the history arrives with the stored copy of the same sample, its time kept to a microsecond
    b.seed({ series: [{ tag: "FT01", t: [100.123456], run_time: [0], v: [1] }], annotations: [] });
    expect(b.until()).toBe(100.123456);
    b.setNow(100.2234562); // the next scan
    expect(b.until()).toBe(100.2234562);
  });
});

describe("SeriesBuffer.seed", () => {
  it("keeps live samples that are newer than the seeded history", () => {
    const b = new SeriesBuffer(100);
    b.append("FT01", 5, 50);
    b.append("FT01", 1, 10);
    b.seed({ series: [{ tag: "FT01", t: [1, 2, 3], run_time: [0, 1, 2], v: [1, 2, 3] }], annotations: [] });
    expect(b.get("FT01")!.t).toEqual([1, 2, 3, 5]);
  });
});
