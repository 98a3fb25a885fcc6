// Regulated records (docs/regulated.md): the method library, electronic signatures, the batch
// report and the audit search, as the API gives them (docs/api.md), and the pure rules the pages
// need: which signatures a user may give, the diff between two versions, who released a run.

import { diffLines } from "diff";
import type { Api } from "../api";
import { tokenizeLine } from "./pcode";
import type { Role } from "../types";

const enc = encodeURIComponent;

export type VersionState = "draft" | "reviewed" | "approved" | "retired";
export type Meaning = "authored" | "reviewed" | "approved" | "released";

export interface Signature {
  id: number;
  kind: "method_version" | "run";
  record_id: number;
  label: string;
  meaning: Meaning;
  user: string;
  full_name: string;
  time: number;
  time_utc: string;
  sha256: string;
  comment: string | null;
  valid: boolean | null;
  reason: string;
}

export interface LibraryVersion {
  id: number;
  method_id: number;
  name: string;
  version: number;
  state: VersionState;
  author: string;
  created: number;
  text: string;
  sha256: string;
  signatures: Signature[];
}

export interface LibraryMethod {
  id: number;
  name: string;
  created: number;
  created_by: string;
  versions: LibraryVersion[];
}

export interface LibraryMethodSummary {
  id: number;
  name: string;
  created: number;
  created_by: string;
  latest_version: number;
  latest_state: VersionState;
  updated: number;
  approved_version: number | null;
}

export interface UnitMethodSource {
  method_id: number;
  name: string;
  version: number;
  state: VersionState;
  loaded: number;
  loaded_by: string;
  modified: boolean;
  require_approved: boolean;
}

export interface AuditEntry {
  id: number;
  time: number;
  user: string | null;
  unit_id: string | null;
  run_id: string | null;
  action: string;
  old: unknown;
  new: unknown;
  prev_hash: string;
  hash: string;
}

export interface AuditPage {
  items: AuditEntry[];
  next: number | null;
}

export interface AuditFilter {
  user?: string;
  unit_id?: string;
  run_id?: string;
  action?: string;
  since?: number | null;
  until?: number | null;
  cursor?: number | null;
  limit?: number;
}

export type SignRecord = { kind: "method_version"; id: number; version: number } | { kind: "run"; id: string };

// --- calls ------------------------------------------------------------------------------------

export const listMethods = (api: Api) => api.request<LibraryMethodSummary[]>("GET", "/api/methods");
export const getMethod = (api: Api, id: number) => api.request<LibraryMethod>("GET", `/api/methods/${id}`);
export const createMethod = (api: Api, name: string, text: string) =>
  api.request<LibraryMethod>("POST", "/api/methods", { name, text });
export const addVersion = (api: Api, id: number, text: string, expectedVersion: number) =>
  api.request<LibraryVersion>("PUT", `/api/methods/${id}`, { text, expected_version: expectedVersion });
export const loadOntoUnit = (api: Api, unitId: string, methodId: number, version: number) =>
  api.request<{ version: number; source: UnitMethodSource | null }>("POST", `/api/units/${enc(unitId)}/method/load`, {
    method_id: methodId,
    version,
  });
export const unitSource = (api: Api, unitId: string) =>
  api.request<{ source: UnitMethodSource | null }>("GET", `/api/units/${enc(unitId)}/method/source`);
export const runSignatures = (api: Api, runId: string) => api.request<Signature[]>("GET", `/api/runs/${enc(runId)}/signatures`);

export function sign(api: Api, record: SignRecord, meaning: Meaning, password: string, comment: string): Promise<Signature> {
  const body: Record<string, unknown> = { record, meaning, password };
  if (comment.trim()) body.comment = comment.trim();
  return api.request<Signature>("POST", "/api/signatures", body);
}

export function reportUrl(runId: string, pdf: boolean): string {
  return `/api/runs/${enc(runId)}/report${pdf ? ".pdf" : ""}`;
}

/** The query string of an audit search (empty values left out). */
export function auditQuery(f: AuditFilter): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : "";
}

export const searchAudit = (api: Api, f: AuditFilter) => api.request<AuditPage>("GET", `/api/audit/search${auditQuery(f)}`);

/** The CSV export of the same filter (no paging: the whole filtered trail). */
export function auditCsvUrl(f: AuditFilter): string {
  const rest: AuditFilter = { ...f };
  delete rest.cursor;
  delete rest.limit;
  return `/api/audit/export.csv${auditQuery(rest)}`;
}

/** A `datetime-local` input's value (local time) as Unix seconds; null when empty or invalid. */
export function localInputToEpoch(value: string): number | null {
  if (!value) return null;
  const t = new Date(value).getTime();
  return Number.isFinite(t) ? t / 1000 : null;
}

// --- rules ------------------------------------------------------------------------------------

export const STATE_LABEL: Record<VersionState, string> = {
  draft: "Draft",
  reviewed: "Reviewed",
  approved: "Approved",
  retired: "Retired",
};

export const MEANING_LABEL: Record<Meaning, string> = {
  authored: "Authored",
  reviewed: "Reviewed",
  approved: "Approved",
  released: "Released",
};

export function stateClass(state: string): string {
  return state in STATE_LABEL ? `badge mstate mstate-${state}` : "badge st-unknown";
}

/**
 * The meanings a user may sign a version with now, mirroring the server's rules (the server has
 * the last word): a viewer signs nothing; its author signs it "authored" only, once; a draft is
 * reviewed and a reviewed version approved by someone else, its reviewer not approving it too.
 */
export function signableMeanings(v: LibraryVersion, user: string, role: Role | string): Meaning[] {
  if (role === "viewer") return [];
  const mine = v.signatures.filter((s) => s.user === user).map((s) => s.meaning);
  if (v.author === user) return mine.includes("authored") ? [] : ["authored"];
  if (v.state === "draft") return ["reviewed"];
  if (v.state === "reviewed" && !mine.includes("reviewed")) return ["approved"];
  return [];
}

/** The run's release, if any: the first "released" signature. */
export function releaseOf(sigs: Signature[]): Signature | null {
  return sigs.find((s) => s.meaning === "released") ?? null;
}

export interface DiffLine {
  kind: "same" | "added" | "removed";
  /** line number in the old text (removed, same) */
  oldNo: number | null;
  /** line number in the new text (added, same) */
  newNo: number | null;
  text: string;
}

/** A line diff from `before` to `after`, one entry per line, numbered on both sides. */
export function lineDiff(before: string, after: string): DiffLine[] {
  const out: DiffLine[] = [];
  let oldNo = 1;
  let newNo = 1;
  for (const part of diffLines(before, after)) {
    const lines = part.value.split("\n");
    if (lines[lines.length - 1] === "") lines.pop();
    for (const text of lines) {
      if (part.added) out.push({ kind: "added", oldNo: null, newNo: newNo++, text });
      else if (part.removed) out.push({ kind: "removed", oldNo: oldNo++, newNo: null, text });
      else out.push({ kind: "same", oldNo: oldNo++, newNo: newNo++, text });
    }
  }
  return out;
}

export function diffCounts(lines: DiffLine[]): { added: number; removed: number } {
  let added = 0;
  let removed = 0;
  for (const l of lines) {
    if (l.kind === "added") added++;
    else if (l.kind === "removed") removed++;
  }
  return { added, removed };
}

/**
 * The names a library text calls that are not built-ins: a library method belongs to no unit,
 * so its UOD commands cannot be checked here and are shown as commands, not as unknown.
 */
export function calledNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split("\n"))
    for (const t of tokenizeLine(line)) if (t.type === "instruction") names.add(line.slice(t.from, t.to));
  return names;
}
