// Which library method a unit has loaded (name, version, state), read again whenever the unit's
// method changes, so an edit after loading shows as "modified".

import { useEffect, useState } from "preact/hooks";
import type { Signal } from "@preact/signals";
import { useApp } from "../state/app";
import { href } from "../state/route";
import { STATE_LABEL, stateClass, unitSource, type UnitMethodSource } from "../lib/regulated";
import type { MethodView } from "../types";

export function MethodSource({ unitId, method }: { unitId: string; method: Signal<MethodView | null> }) {
  const app = useApp();
  const [source, setSource] = useState<UnitMethodSource | null | undefined>(undefined);
  const version = method.value?.version ?? null;
  useEffect(() => {
    let cancelled = false;
    unitSource(app.api, unitId)
      .then((r) => !cancelled && setSource(r.source))
      .catch(() => !cancelled && setSource(null));
    return () => {
      cancelled = true;
    };
  }, [unitId, version]);

  if (source === undefined) return null;
  if (source === null)
    return (
      <p class="small muted" data-testid="method-source">
        Not from the method library.
      </p>
    );
  return (
    <p class="small method-source" data-testid="method-source">
      From the library:{" "}
      <a href={href({ name: "method", id: String(source.method_id) })} data-field="name">
        {source.name}
      </a>{" "}
      version <span data-field="version">{source.version}</span>{" "}
      <span class={stateClass(source.state)} data-field="state">
        {STATE_LABEL[source.state] ?? source.state}
      </span>
      {source.modified && <span class="badge st-paused"> modified since loaded</span>}
      {source.require_approved && <span class="muted"> · this unit runs approved methods only</span>}
    </p>
  );
}
