import { describe, expect, it } from "vitest";
import { CsvRowCounter, estimateRows, formatBytes, progressPercent, progressText, readCsvBody } from "./csvProgress";

const enc = new TextEncoder();

const SAMPLE =
  "# unit: u1\n# run id: r1\n# uod: \"odd, name\n" +
  'UTC timestamp,Run Time,Mark\n' +
  "2026-01-01T00:00:00Z,0,\n" +
  '2026-01-01T00:00:01Z,1,"two\nlines, ""quoted"""\n' +
  "2026-01-01T00:00:02Z,2,Ø ü 流量\n";

function countWhole(text: string): CsvRowCounter {
  const c = new CsvRowCounter();
  c.push(enc.encode(text));
  c.finish();
  return c;
}

function countSplit(bytes: Uint8Array, cuts: number[]): CsvRowCounter {
  const c = new CsvRowCounter();
  let at = 0;
  for (const cut of [...cuts, bytes.length]) {
    c.push(bytes.subarray(at, cut));
    at = cut;
  }
  c.finish();
  return c;
}

function streamOf(parts: Uint8Array[], failAfter?: number): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (failAfter !== undefined && i === failAfter) controller.error(new TypeError("network error"));
      else if (i < parts.length) controller.enqueue(parts[i++]!);
      else controller.close();
    },
  });
}

describe("CsvRowCounter", () => {
  it("counts data rows: not metadata, not the header; quoted newlines stay in their row", () => {
    const c = countWhole(SAMPLE);
    expect(c.rows).toBe(3);
    expect(c.bytes).toBe(enc.encode(SAMPLE).length);
  });

  it("gives the same count wherever the chunks are cut, even inside a UTF-8 character", () => {
    const bytes = enc.encode(SAMPLE);
    for (let cut = 0; cut <= bytes.length; cut++) {
      expect(countSplit(bytes, [cut]).rows, `cut at ${cut}`).toBe(3);
    }
    // one byte at a time
    expect(countSplit(bytes, Array.from({ length: bytes.length }, (_, i) => i)).rows).toBe(3);
  });

  it("counts only newline-terminated rows while streaming; finish() adds an unterminated last row", () => {
    const c = new CsvRowCounter();
    c.push(enc.encode("# m\nh1,h2\n1,2\n3,"));
    expect(c.rows).toBe(1);
    c.push(enc.encode("4"));
    expect(c.rows).toBe(1);
    c.finish();
    expect(c.rows).toBe(2);
  });

  it("handles CRLF, blank lines, a header only and an empty body", () => {
    expect(countWhole("# m\r\nh1,h2\r\n1,2\r\n\r\n3,4\r\n").rows).toBe(2);
    expect(countWhole("# m\nh1,h2\n").rows).toBe(0);
    expect(countWhole("").rows).toBe(0);
  });
});

describe("estimateRows", () => {
  it("is the duration over the data log interval, plus one", () => {
    expect(estimateRows({ started: 1000, stopped: 1060, uod: { data_log_interval: 1 } })).toBe(61);
    expect(estimateRows({ started: 1000, stopped: 1060, uod: { data_log_interval: 5 } })).toBe(13);
    expect(estimateRows({ started: 1000, stopped: 1000.5, uod: { data_log_interval: 1 } })).toBe(1);
  });

  it("defaults to 1 s and uses now for a run still going", () => {
    expect(estimateRows({ started: 1000, stopped: 1010 })).toBe(11);
    expect(estimateRows({ started: 1000, stopped: 1010, uod: { data_log_interval: 0 } })).toBe(11);
    expect(estimateRows({ started: 1000, stopped: null, uod: {} }, 1100)).toBe(101);
  });

  it("gives no estimate for times that make no sense", () => {
    expect(estimateRows({ started: 1000, stopped: 900 })).toBeNull();
    expect(estimateRows({ started: Number.NaN, stopped: 900 })).toBeNull();
  });
});

describe("progressPercent and progressText", () => {
  it("caps the bar at 99 % until done", () => {
    expect(progressPercent(0, 100, false)).toBe(0);
    expect(progressPercent(50, 100, false)).toBe(50);
    expect(progressPercent(100, 100, false)).toBe(99);
    expect(progressPercent(250, 100, false)).toBe(99);
    expect(progressPercent(3, 100, true)).toBe(100);
  });

  it("is indeterminate without an estimate", () => {
    expect(progressPercent(5, null, false)).toBeNull();
    expect(progressPercent(5, 0, false)).toBeNull();
    expect(progressPercent(5, null, true)).toBe(100);
  });

  it("says N of ~M rows, never fewer expected than received", () => {
    expect(progressText(10, 61, false)).toBe("10 of ~61 rows");
    expect(progressText(70, 61, false)).toBe("70 of ~70 rows");
    expect(progressText(1, null, false)).toBe("1 row");
    expect(progressText(61, 61, true)).toBe("61 rows");
  });

  it("formats sizes", () => {
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(2048)).toBe("2.0 kB");
    expect(formatBytes(3 * 1024 * 1024)).toBe("3.0 MB");
  });
});

describe("readCsvBody", () => {
  it("reads every chunk, reporting progress after each", async () => {
    const bytes = enc.encode(SAMPLE);
    const parts = [bytes.subarray(0, 30), bytes.subarray(30, 95), bytes.subarray(95)];
    const seen: [number, number][] = [];
    const result = await readCsvBody(streamOf(parts), (rows, n) => seen.push([rows, n]));
    expect(result.rows).toBe(3);
    expect(result.bytes).toBe(bytes.length);
    expect(result.chunks).toHaveLength(3);
    expect(seen).toHaveLength(3);
    expect(seen[2]![1]).toBe(bytes.length);
    expect(seen.map(([r]) => r)).toEqual([...seen.map(([r]) => r)].sort((a, b) => a - b));
    const text = new TextDecoder().decode(await new Blob(result.chunks as BlobPart[]).arrayBuffer());
    expect(text).toBe(SAMPLE);
  });

  it("rejects when the stream breaks", async () => {
    const parts = [enc.encode("h\n1\n"), enc.encode("2\n")];
    await expect(readCsvBody(streamOf(parts, 1), () => {})).rejects.toThrow("network error");
  });
});
