// The HTTP API (docs/api.md). Every call goes to the page's own origin; the session cookie set at
// login authenticates, and the bearer token is sent too when we have it.

import type {
  ErrorLogEntry,
  Finding,
  LoginResult,
  MethodView,
  Page,
  PlotData,
  RunDetail,
  RunLog,
  RunSummary,
  UnitDetail,
  UnitSummary,
  User,
} from "./types";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly field: string | null = null,
    readonly body: unknown = null,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export type ControlAction = "Start" | "Stop" | "Pause" | "Unpause" | "Hold" | "Unhold" | "Restart";

export interface Api {
  token: string | null;
  /** called when the server answers 401 to anything but a login: the session ended */
  onUnauthorized: (() => void) | null;
  login(username: string, password: string): Promise<LoginResult>;
  logout(): Promise<void>;
  me(): Promise<User>;
  units(): Promise<UnitSummary[]>;
  unit(id: string): Promise<UnitDetail>;
  control(id: string, action: ControlAction): Promise<unknown>;
  inject(id: string, pcode: string): Promise<unknown>;
  method(id: string): Promise<MethodView>;
  saveMethod(
    id: string,
    text: string,
    expectedVersion: number,
    lineIds?: (string | null)[],
  ): Promise<{ version: number; findings: Finding[] }>;
  checkMethod(id: string, text: string, signal?: AbortSignal): Promise<{ findings: Finding[] }>;
  runlog(id: string): Promise<RunLog>;
  cancelLine(id: string, lineId: string): Promise<unknown>;
  forceLine(id: string, lineId: string): Promise<unknown>;
  /** fix and resume: run a failed method line again (skip: false) or skip it */
  resumeLine(id: string, lineId: string, skip: boolean): Promise<unknown>;
  errors(id: string): Promise<ErrorLogEntry[]>;
  unitPlot(id: string, tags: string[], points?: number): Promise<PlotData>;
  runs(query: RunQuery): Promise<Page<RunSummary>>;
  run(id: string): Promise<RunDetail>;
  runPlot(id: string, tags: string[], points?: number): Promise<PlotData>;
  /** the streamed CSV export: the response once its status is OK, its body not yet read
   *  (ApiError for an HTTP error status or when the server cannot be reached) */
  runCsv(id: string, signal?: AbortSignal): Promise<Response>;
  /** any other JSON call (the alarm and notification pages: lib/alarmsApi.ts) */
  request<T = unknown>(method: string, path: string, body?: unknown): Promise<T>;
}

export interface RunQuery {
  unit_id?: string;
  q?: string;
  cursor?: string | null;
  limit?: number;
}

function qs(params: Record<string, string | number | null | undefined>): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") u.set(k, String(v));
  const s = u.toString();
  return s ? `?${s}` : "";
}

const enc = encodeURIComponent;

export function createApi(fetchFn: typeof fetch = (...a) => fetch(...a), base = ""): Api {
  const api: Api = {
    token: null,
    onUnauthorized: null,
    async login(username, password) {
      const r = await call<LoginResult>("POST", "/api/auth/login", { username, password });
      api.token = r.token;
      return r;
    },
    async logout() {
      try {
        await call("POST", "/api/auth/logout");
      } finally {
        api.token = null;
      }
    },
    me: () => call<User>("GET", "/api/auth/me"),
    units: () => call<UnitSummary[]>("GET", "/api/units"),
    unit: (id) => call<UnitDetail>("GET", `/api/units/${enc(id)}`),
    control: (id, action) => call("POST", `/api/units/${enc(id)}/control`, { action }),
    inject: (id, pcode) => call("POST", `/api/units/${enc(id)}/inject`, { pcode }),
    method: (id) => call<MethodView>("GET", `/api/units/${enc(id)}/method`),
    saveMethod: (id, text, expected_version, line_ids) =>
      call("PUT", `/api/units/${enc(id)}/method`, line_ids ? { text, expected_version, line_ids } : { text, expected_version }),
    checkMethod: (id, text, signal) => call("POST", `/api/units/${enc(id)}/method/check`, { text }, signal),
    runlog: (id) => call<RunLog>("GET", `/api/units/${enc(id)}/runlog`),
    cancelLine: (id, lineId) => call("POST", `/api/units/${enc(id)}/runlog/${enc(lineId)}/cancel`),
    forceLine: (id, lineId) => call("POST", `/api/units/${enc(id)}/runlog/${enc(lineId)}/force`),
    resumeLine: (id, lineId, skip) => call("POST", `/api/units/${enc(id)}/runlog/${enc(lineId)}/${skip ? "skip" : "resume"}`),
    errors: (id) => call<ErrorLogEntry[]>("GET", `/api/units/${enc(id)}/errors`),
    unitPlot: (id, tags, points = 1000) => call<PlotData>("GET", `/api/units/${enc(id)}/plot${qs({ tags: tags.join(","), points })}`),
    runs: (q) => call<Page<RunSummary>>("GET", `/api/runs${qs({ unit_id: q.unit_id, q: q.q, cursor: q.cursor, limit: q.limit })}`),
    run: (id) => call<RunDetail>("GET", `/api/runs/${enc(id)}`),
    runPlot: (id, tags, points = 1000) => call<PlotData>("GET", `/api/runs/${enc(id)}/plot${qs({ tags: tags.join(","), points })}`),
    runCsv: (id, signal) => send("GET", `/api/runs/${enc(id)}/csv`, undefined, signal, "text/csv"),
    request: (method, path, body) => call(method, path, body),
  };

  /** sends a request; returns the response when its status is OK, throws ApiError otherwise */
  async function send(method: string, path: string, body: unknown, signal: AbortSignal | undefined, accept: string): Promise<Response> {
    const headers: Record<string, string> = { Accept: accept };
    // every change is JSON, even without a body: the server refuses a cookie-authenticated
    // change of any other type (a cross-site form cannot send JSON)
    if (body !== undefined || (method !== "GET" && method !== "HEAD")) headers["Content-Type"] = "application/json";
    if (api.token) headers.Authorization = `Bearer ${api.token}`;
    let res: Response;
    try {
      res = await fetchFn(base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "same-origin",
        signal,
      });
    } catch (e) {
      if (e instanceof DOMException && e.name === "AbortError") throw e;
      throw new ApiError(0, "The server cannot be reached");
    }
    if (!res.ok) {
      const data = parse(await res.text());
      const obj = (data && typeof data === "object" ? data : {}) as { error?: string; field?: string | null };
      const msg = obj.error ?? (typeof data === "string" && data ? data.slice(0, 200) : `${res.status} ${res.statusText}`);
      if (res.status === 401 && path !== "/api/auth/login" && path !== "/api/auth/me") api.onUnauthorized?.();
      throw new ApiError(res.status, msg, obj.field ?? null, data);
    }
    return res;
  }

  function parse(text: string): unknown {
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }

  async function call<T = unknown>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const res = await send(method, path, body, signal, "application/json");
    if (res.status === 204) return undefined as T;
    return parse(await res.text()) as T;
  }

  return api;
}
