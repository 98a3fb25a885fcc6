// Progress of a run's CSV export (GET /api/runs/{id}/csv, streamed without a Content-Length).
// The export (docs/api.md) is: metadata lines starting with "#", a header row, then one row per
// sample time. We count bytes and data rows as chunks arrive; the total is only an estimate
// from the run's duration and the UOD's data log interval.
//
// Counting works on the raw bytes: "\n", '"' and "#" are ASCII, and no byte of a multi-byte
// UTF-8 character is below 0x80, so a chunk boundary inside a character changes nothing.

const NL = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const HASH = 0x23;

/** Counts bytes and CSV records across chunk boundaries. A record ends at a newline outside
 *  quotes (a quoted cell may hold newlines); "#" lines are metadata and end at the first
 *  newline; blank lines are skipped; the first record is the header. */
export class CsvRowCounter {
  /** bytes received */
  bytes = 0;
  private records = 0;
  private inQuotes = false;
  private comment = false;
  /** the current line holds something other than CR */
  private content = false;

  push(chunk: Uint8Array): void {
    this.bytes += chunk.length;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i];
      if (this.comment) {
        if (b === NL) this.comment = false;
        continue;
      }
      if (!this.content) {
        if (b === NL || b === CR) continue;
        this.content = true;
        if (b === HASH) {
          this.comment = true;
          this.content = false;
          continue;
        }
      }
      if (b === QUOTE) this.inQuotes = !this.inQuotes;
      else if (b === NL && !this.inQuotes) {
        this.records++;
        this.content = false;
      }
    }
  }

  /** at the end of the body: a last record without a newline counts too */
  finish(): void {
    if (this.content) {
      this.records++;
      this.content = false;
      this.inQuotes = false;
    }
    this.comment = false;
  }

  /** data rows so far (records after the header) */
  get rows(): number {
    return Math.max(0, this.records - 1);
  }
}

export interface RunTimes {
  started: number;
  stopped?: number | null | undefined;
  uod?: { data_log_interval?: number | null | undefined } | null | undefined;
}

/** Expected number of data rows: one per data log interval (default 1 s) from start to stop
 *  (or `now` for a run still going), plus the first. Null when the times make no sense. */
export function estimateRows(run: RunTimes, now: number = Date.now() / 1000): number | null {
  const end = run.stopped ?? now;
  const raw = run.uod?.data_log_interval;
  const interval = typeof raw === "number" && Number.isFinite(raw) && raw > 0 ? raw : 1;
  const span = end - run.started;
  if (!Number.isFinite(span) || span < 0) return null;
  return Math.floor(span / interval) + 1;
}

/** Percentage for the bar: 100 when done; otherwise capped at 99, since the total is an
 *  estimate. Null (an indeterminate bar) without an estimate. */
export function progressPercent(rows: number, estimate: number | null, done: boolean): number | null {
  if (done) return 100;
  if (!estimate || estimate <= 0) return null;
  return Math.min(99, Math.max(0, Math.floor((100 * rows) / estimate)));
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} kB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

/** "N of ~M rows" while running (M never below N: the estimate may be short); "N rows" done */
export function progressText(rows: number, estimate: number | null, done: boolean): string {
  const unit = (n: number) => (n === 1 ? "row" : "rows");
  if (done || estimate === null) return `${rows} ${unit(rows)}`;
  const total = Math.max(estimate, rows);
  return `${rows} of ~${total} ${unit(total)}`;
}

export interface CsvReadResult {
  chunks: Uint8Array[];
  rows: number;
  bytes: number;
}

/** Reads a body to its end, counting as it goes; `onProgress` after each chunk. Rejects with the
 *  reader's error (an AbortError when the fetch's signal was aborted). */
export async function readCsvBody(
  body: ReadableStream<Uint8Array>,
  onProgress: (rows: number, bytes: number) => void,
): Promise<CsvReadResult> {
  const reader = body.getReader();
  const counter = new CsvRowCounter();
  const chunks: Uint8Array[] = [];
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      counter.push(value);
      onProgress(counter.rows, counter.bytes);
    }
  } finally {
    reader.releaseLock();
  }
  counter.finish();
  return { chunks, rows: counter.rows, bytes: counter.bytes };
}
