// Units that can stand after a number compared with a tag: those of the same kind of quantity as
// the tag's own unit (the engine converts between them). A unit outside these families is offered
// alone. aggregator/api/completions.py holds the same table.

export const UNIT_FAMILIES: readonly (readonly string[])[] = [
  ["s", "min", "h", "ms"],
  ["degC", "K", "degF"],
  ["L/h", "L/min", "mL/min", "mL/h"],
  ["L", "mL"],
  ["bar", "mbar", "kPa", "Pa", "MPa", "psi"],
  ["mS/cm", "uS/cm", "S/m"],
  ["mAU", "AU"],
  ["g", "kg", "mg"],
  ["m", "cm", "mm"],
  ["%"],
  ["CV"],
];

/** The tag's own unit first, then the others of its family. */
export function unitsCompatibleWith(unit: string): string[] {
  const family = UNIT_FAMILIES.find((f) => f.includes(unit));
  return family ? [unit, ...family.filter((u) => u !== unit)] : [unit];
}
