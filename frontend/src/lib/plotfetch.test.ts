import { describe, expect, it } from "vitest";
import { fetchPlotTolerant } from "./plotfetch";
import type { PlotData } from "../types";

const series = (tag: string) => ({ tag, t: [1], run_time: [0], v: [1] });

describe("fetchPlotTolerant", () => {
  it("asks once when the server accepts every tag", async () => {
    const calls: string[][] = [];
    const r = await fetchPlotTolerant(async (tags) => {
      calls.push(tags);
      return { series: tags.map(series), annotations: [] };
    }, ["A", "B"]);
    expect(calls).toEqual([["A", "B"]]);
    expect(r.missing).toEqual([]);
  });
  it("falls back to one request per tag and reports the tags without data", async () => {
    const get = async (tags: string[]): Promise<PlotData> => {
      if (tags.includes("UV01")) throw new Error("no data for UV01");
      return { series: tags.map(series), annotations: [{ t: 1, run_time: 0, text: "Load" }] };
    };
    const r = await fetchPlotTolerant(get, ["FT01", "UV01", "PT01"]);
    expect(r.data.series.map((s) => s.tag)).toEqual(["FT01", "PT01"]);
    expect(r.data.annotations).toHaveLength(1);
    expect(r.missing).toEqual(["UV01"]);
  });
  it("fails when no tag has data", async () => {
    await expect(fetchPlotTolerant(async () => Promise.reject(new Error("x")), ["A", "B"])).rejects.toThrow("no plot data");
  });
});
