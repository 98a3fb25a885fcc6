// The alarm banner on every page: unacknowledged alarms counted per priority, the highest first,
// coloured by the highest; a link to the Alarms page. Nothing shows while none waits.

import type { AlarmStore } from "../state/alarms";
import { unackCounts } from "../lib/alarms";

export function AlarmBanner({ store }: { store: AlarmStore }) {
  const counts = unackCounts(store.active.value);
  if (counts.length === 0) return null;
  const total = counts.reduce((n, c) => n + c.count, 0);
  const top = counts[0]!.priority;
  return (
    <div class={`banner alarm-banner alarm-banner-${top}`} role="status" aria-live="polite" data-testid="alarm-banner">
      <strong>
        {total} unacknowledged alarm{total === 1 ? "" : "s"}:
      </strong>
      <ul class="alarm-counts">
        {counts.map((c) => (
          <li key={c.priority} class={`prio prio-${c.priority}`} data-priority={c.priority}>
            {c.count} {c.priority}
          </li>
        ))}
      </ul>
      <a class="btn btn-small" href="#/alarms">
        Show alarms
      </a>
    </div>
  );
}
