// Connection banner: a lost /ws connection is never silent; it says when the next attempt is.

import { useApp } from "../state/app";

export function ConnectionBanner() {
  const app = useApp();
  const info = app.connection.value;
  const now = app.now.value * 1000;
  if (info.status === "open" || info.status === "closed") return null;
  if (info.status === "connecting" && info.attempt === 0) return null;
  const wait = info.nextRetryAt ? Math.max(0, Math.ceil((info.nextRetryAt - now) / 1000)) : 0;
  return (
    <div class="banner banner-warn" role="alert" data-testid="connection-banner">
      <strong>Connection to the server lost.</strong>{" "}
      <span>
        Values shown are stale.{" "}
        {info.nextRetryAt ? `Reconnecting${wait > 0 ? ` in ${wait} s` : "…"} (attempt ${info.attempt}).` : "Reconnecting…"}
      </span>{" "}
      <button type="button" class="btn btn-small" onClick={() => app.live.retryNow()}>
        Retry now
      </button>
    </div>
  );
}

export function Toasts() {
  const app = useApp();
  const list = app.toasts.value;
  return (
    <div class="toasts" aria-live="polite">
      {list.map((t) => (
        <div key={t.id} class={`toast toast-${t.kind}`} role={t.kind === "error" ? "alert" : "status"}>
          <span>{t.text}</span>
          <button type="button" class="btn-icon" aria-label="Dismiss" onClick={() => app.dismiss(t.id)}>
            ×
          </button>
        </div>
      ))}
    </div>
  );
}
