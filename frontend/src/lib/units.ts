// Checking what an operator types into a process value's entry before it becomes P-code.

export interface EntrySpec {
  /** units the entry accepts; the first is the default when none is typed */
  units: readonly string[];
  minimum?: number | null;
  maximum?: number | null;
}

export type EntryResult =
  | { ok: true; value: number; unit: string | null; argument: string }
  | { ok: false; error: string };

const ENTRY_RE = /^([+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?)\s*(.*)$/;

/**
 * Parse "20", "20 %", "20%", "1,5 L/h". The unit, typed or chosen (`selectedUnit`), must be one
 * the entry accepts; the number must be finite and within the command's limits.
 */
export function checkEntry(text: string, spec: EntrySpec, selectedUnit?: string | null): EntryResult {
  const trimmed = text.trim();
  if (trimmed === "") return { ok: false, error: "Enter a value" };
  const m = ENTRY_RE.exec(trimmed);
  if (!m || m[1] === undefined) return { ok: false, error: `"${trimmed}" is not a number` };
  const numberText = m[1].replace(",", ".");
  const value = Number(numberText);
  if (!Number.isFinite(value)) return { ok: false, error: `"${m[1]}" is not a finite number` };
  const typedUnit = (m[2] ?? "").trim();
  let unit: string | null;
  if (spec.units.length === 0) {
    if (typedUnit !== "") return { ok: false, error: `This value takes no unit (got "${typedUnit}")` };
    unit = null;
  } else if (typedUnit !== "") {
    if (!spec.units.includes(typedUnit)) {
      const near = spec.units.find((u) => u.toLowerCase() === typedUnit.toLowerCase());
      return {
        ok: false,
        error: near
          ? `Unknown unit "${typedUnit}"; did you mean "${near}"?`
          : `Unit "${typedUnit}" is not accepted; use ${spec.units.join(", ")}`,
      };
    }
    unit = typedUnit;
  } else {
    unit = selectedUnit && spec.units.includes(selectedUnit) ? selectedUnit : (spec.units[0] ?? null);
  }
  // Limits are stated in the default unit; other units are converted by the engine, which checks them.
  const inDefaultUnit = unit === null || unit === spec.units[0];
  if (inDefaultUnit && spec.minimum != null && value < spec.minimum)
    return { ok: false, error: `Minimum is ${spec.minimum}${unit ? " " + unit : ""}` };
  if (inDefaultUnit && spec.maximum != null && value > spec.maximum)
    return { ok: false, error: `Maximum is ${spec.maximum}${unit ? " " + unit : ""}` };
  const shown = String(value);
  return { ok: true, value, unit, argument: unit ? `${shown} ${unit}` : shown };
}

/** The P-code an entry runs: '<command>: <value> <unit>'. */
export function entryPcode(command: string, argument: string): string {
  return `${command}: ${argument}`;
}
