// Small presentational pieces shared by the views.

import { formatProgress } from "../lib/format";

const STATE_CLASS: Record<string, string> = {
  Running: "st-running",
  Paused: "st-paused",
  Holding: "st-holding",
  Stopped: "st-stopped",
  Restarting: "st-running",
};

export function StateBadge({ state }: { state: string | null | undefined }) {
  const s = state || "Unknown";
  return <span class={`badge ${STATE_CLASS[s] ?? "st-unknown"}`}>{s}</span>;
}

export function LiveBadge({ online, stale }: { online: boolean; stale?: boolean | undefined }) {
  if (!online) return <span class="badge live-offline">Offline</span>;
  if (stale) return <span class="badge live-stale">Stale</span>;
  return <span class="badge live-online">Live</span>;
}

export function ProgressBar({ value, label }: { value: number | null | undefined; label: string }) {
  if (value == null) return null;
  const pct = Math.round(Math.min(1, Math.max(0, value)) * 100);
  return (
    <div class="progress" role="progressbar" aria-label={label} aria-valuemin={0} aria-valuemax={100} aria-valuenow={pct}>
      <div class="progress-fill" style={{ width: `${pct}%` }} />
      <span class="progress-text">{formatProgress(value)}</span>
    </div>
  );
}

export function Spinner({ label = "Loading…" }: { label?: string }) {
  return (
    <p class="muted" role="status">
      {label}
    </p>
  );
}
