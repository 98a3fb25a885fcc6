// A long method for the diagnostics benchmark and its tests: blocks, watches, macros and commands
// of the shared fixture's unit, repeated to the length asked for.

const BLOCK = [
  "Block: Step {n}",
  "    Call macro: Buffer A",
  "    Flow: 60 L/h",
  "    Watch: UV01 > 500 mAU",
  "        Mark: Peak {n}",
  "    Inlet: VA03",
  "    Wait: 5 s",
  "    1 End block",
];

/** `lines` lines of a method with no findings. */
export function fixedMethod(lines: number): string {
  const out = ["Macro: Buffer A", "    Inlet: VA01", "    Mark: Buffer A", "Base: CV", "Alarm: PT01 > 3 bar", "    Flow: 30 L/h"];
  for (let n = 1; out.length < lines; n++) for (const l of BLOCK) if (out.length < lines) out.push(l.replace("{n}", String(n)));
  return out.join("\n");
}
