// Process values: live, greyed and labelled when stale, each with its command (entry or choices).

import { useState } from "preact/hooks";
import type { Signal } from "@preact/signals";
import { useApp } from "../state/app";
import { formatClock, formatValue } from "../lib/format";
import { checkEntry, entryPcode } from "../lib/units";
import type { CommandDescription, ProcessValueDescription, TagDescription, TagState } from "../types";

interface Props {
  unitId: string;
  values: ProcessValueDescription[];
  /** read here, so that tag changes re-render the list and not the whole unit view */
  tags: Signal<Map<string, TagState>>;
  tagInfo: Map<string, TagDescription>;
  commands: CommandDescription[];
  /** everything is stale: unit offline or our connection lost */
  allStale: boolean;
  canOperate: boolean;
}

export function ProcessValues({ unitId, values, tags: tagsSignal, tagInfo, commands, allStale, canOperate }: Props) {
  const tags = tagsSignal.value;
  return (
    <ul class="pv-list" aria-label="Process values">
      {values.map((pv) => (
        <ProcessValueRow
          key={pv.tag}
          unitId={unitId}
          pv={pv}
          tag={tags.get(pv.tag)}
          info={tagInfo.get(pv.tag)}
          command={commands.find((c) => c.name === commandName(pv))}
          allStale={allStale}
          canOperate={canOperate}
        />
      ))}
    </ul>
  );
}

function commandName(pv: ProcessValueDescription): string {
  const c = pv.command ?? pv.tag;
  const colon = c.indexOf(":");
  return (colon >= 0 ? c.slice(0, colon) : c).trim();
}

function ProcessValueRow({
  unitId,
  pv,
  tag,
  info,
  command,
  allStale,
  canOperate,
}: {
  unitId: string;
  pv: ProcessValueDescription;
  tag: TagState | undefined;
  info: TagDescription | undefined;
  command: CommandDescription | undefined;
  allStale: boolean;
  canOperate: boolean;
}) {
  const app = useApp();
  const stale = allStale || !tag || tag.quality !== "good";
  const unit = tag?.unit ?? info?.unit ?? null;
  const kind = pv.kind ?? "readonly";
  const inject = async (pcode: string) => {
    try {
      await app.api.inject(unitId, pcode);
      app.notify("success", `Sent: ${pcode}`);
      return true;
    } catch (e) {
      app.notify("error", `${pcode}: ${e instanceof Error ? e.message : String(e)}`);
      return false;
    }
  };
  const valueId = `pv-${unitId}-${pv.tag}`.replace(/[^\w-]/g, "_");
  return (
    <li class={`pv${stale ? " is-stale" : ""}`} data-testid="pv" data-tag={pv.tag} data-stale={stale ? "true" : "false"}>
      <div class="pv-head">
        <span class="pv-name" id={`${valueId}-name`} title={info?.description || undefined}>
          {pv.tag}
        </span>
        <span class="pv-value" id={valueId} data-testid="pv-value" aria-live="off">
          {formatValue(tag?.value, unit)}
        </span>
      </div>
      {(stale || tag?.simulated || tag?.quality === "bad") && (
        <div class="pv-flags">
          {stale && <span class="flag flag-stale">stale{tag?.tick ? ` since ${formatClock(tag.tick)}` : ""}</span>}
          {tag?.quality === "bad" && <span class="flag flag-bad">bad value</span>}
          {tag?.simulated && <span class="flag flag-sim">simulated</span>}
        </div>
      )}
      {kind === "entry" && canOperate && (
        <EntryForm pv={pv} command={command} unit={unit} labelId={`${valueId}-name`} onSend={inject} />
      )}
      {kind === "choice" && canOperate && (pv.choices?.length ?? 0) > 0 && (
        <div class="pv-choices" role="group" aria-labelledby={`${valueId}-name`}>
          {pv.choices!.map((c) => (
            <button
              type="button"
              key={c.label}
              class="btn btn-small"
              aria-pressed={choiceSelected(c.pcode, c.label, tag?.value) ? "true" : "false"}
              onClick={() => void inject(c.pcode)}
            >
              {c.label}
            </button>
          ))}
        </div>
      )}
    </li>
  );
}

function EntryForm({
  pv,
  command,
  unit,
  labelId,
  onSend,
}: {
  pv: ProcessValueDescription;
  command: CommandDescription | undefined;
  unit: string | null;
  labelId: string;
  onSend: (pcode: string) => Promise<boolean>;
}) {
  const units = pv.units?.length ? pv.units : command?.argument?.units?.length ? command.argument.units : unit ? [unit] : [];
  const [text, setText] = useState("");
  const [selected, setSelected] = useState(units[0] ?? "");
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    const r = checkEntry(text, { units, minimum: command?.argument?.minimum, maximum: command?.argument?.maximum }, selected);
    if (!r.ok) {
      setError(r.error);
      return;
    }
    setError(null);
    const name = commandName(pv);
    const cmd = pv.command && /\{value\}/.test(pv.command) ? pv.command.replace("{value}", r.argument) : entryPcode(name, r.argument);
    if (await onSend(cmd)) setText("");
  };
  const errId = `${labelId}-err`;
  return (
    <form class="pv-entry" onSubmit={submit} noValidate>
      <input
        type="text"
        inputMode="decimal"
        class="mono"
        aria-label={`New value for ${pv.tag}`}
        aria-invalid={error ? "true" : "false"}
        aria-describedby={error ? errId : undefined}
        placeholder="new value"
        value={text}
        onInput={(e) => {
          setText(e.currentTarget.value);
          setError(null);
        }}
      />
      {units.length > 1 ? (
        <select aria-label={`Unit for ${pv.tag}`} value={selected} onChange={(e) => setSelected(e.currentTarget.value)}>
          {units.map((u) => (
            <option key={u} value={u}>
              {u}
            </option>
          ))}
        </select>
      ) : units.length === 1 ? (
        <span class="pv-unit">{units[0]}</span>
      ) : null}
      <button type="submit" class="btn btn-small">
        Set
      </button>
      {error && (
        <p id={errId} class="error-text small" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}

/** A choice is the current one when the tag holds its label or the value its P-code sets. */
export function choiceSelected(pcode: string, label: string, value: unknown): boolean {
  if (value === null || value === undefined) return false;
  const v = String(value);
  if (v === label) return true;
  const colon = pcode.lastIndexOf(":");
  return colon >= 0 && pcode.slice(colon + 1).trim() === v;
}
