import { formatClock } from "../lib/format";
import type { ErrorLogEntry } from "../types";

export function ErrorLogList({ entries }: { entries: ErrorLogEntry[] }) {
  if (entries.length === 0) return <p class="muted">No messages.</p>;
  const newestFirst = [...entries].reverse();
  return (
    <div class="table-wrap errlog-scroll" tabIndex={0} aria-label="Error log entries">
      <table class="table table-compact">
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col">Level</th>
            <th scope="col">Source</th>
            <th scope="col">Message</th>
          </tr>
        </thead>
        <tbody>
          {newestFirst.map((e, i) => (
            <tr key={`${e.time}-${i}`} data-testid="error-entry">
              <td>{formatClock(e.time)}</td>
              <td>
                <span class={`badge lv-${e.level}`}>{e.level}</span>
              </td>
              <td>{e.source ?? "engine"}</td>
              <td>{e.message}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
