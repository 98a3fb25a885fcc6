// Shapes of the HTTP API and the /ws websocket (docs/api.md) and of the protocol models the API
// embeds (docs/protocol.schema.json). Fields the UI does not read are left out or kept optional.

export type Role = "viewer" | "operator" | "admin";
export type Scalar = boolean | number | string | null;
export type Quality = "good" | "stale" | "bad";
export type SystemState = "Stopped" | "Running" | "Paused" | "Holding" | "Restarting";
export type LineState = "running" | "completed" | "cancelled" | "forced" | "failed";
export type Severity = "error" | "warning" | "info";

export interface User {
  name: string;
  role: Role;
}

export interface LoginResult {
  token: string;
  expires?: number;
  user: User;
}

export interface UnitSummary {
  id: string;
  name: string;
  online: boolean;
  stale?: boolean;
  state: SystemState | string | null;
  method_status?: string | null;
  run_id?: string | null;
  block?: string | null;
  run_time?: number | null;
  process_time?: number | null;
  connection_status?: string | null;
  last_seen?: number | null;
  required_roles?: string[];
  /** client side: when this summary arrived (epoch s), to advance run_time between updates */
  received_at?: number;
}

export interface TagState {
  name: string;
  value: Scalar;
  unit?: string | null;
  quality?: Quality;
  tick?: number;
  simulated?: boolean;
}

export interface ArgumentDescription {
  kind: "none" | "number" | "choice" | "text";
  choices?: string[];
  minimum?: number | null;
  maximum?: number | null;
  pattern?: string | null;
  units?: string[];
}

export interface CommandDescription {
  name: string;
  description?: string;
  group?: string | null;
  argument?: ArgumentDescription;
}

export interface ProcessValueChoice {
  label: string;
  pcode: string;
}

export interface ProcessValueDescription {
  tag: string;
  kind?: "readonly" | "entry" | "choice";
  command?: string | null;
  units?: string[];
  choices?: ProcessValueChoice[];
}

export interface TagDescription {
  name: string;
  kind: string;
  unit?: string | null;
  description?: string;
  direction?: string;
  choices?: string[];
}

export interface PlotAxis {
  label: string;
  tags: string[];
  color?: string | null;
  y_min?: number | null;
  y_max?: number | null;
}

export interface ColorRegion {
  tag: string;
  colors: Record<string, string>;
}

export interface SubPlot {
  axes: PlotAxis[];
  color_regions?: ColorRegion[];
  ratio?: number;
}

export interface PlotConfiguration {
  subplots?: SubPlot[];
  x_axis?: string;
  x_axis_choices?: string[];
  annotation_tags?: string[];
}

export interface UodDescription {
  name: string;
  author_name?: string;
  hardware?: string;
  filename?: string;
  tags?: TagDescription[];
  commands?: CommandDescription[];
  process_values?: ProcessValueDescription[];
  plot?: PlotConfiguration;
  base_units?: string[];
  required_roles?: string[];
  scan_interval?: number;
  data_log_interval?: number;
}

export interface UnitDetail extends UnitSummary {
  uod: UodDescription;
  tags: TagState[];
}

export interface MethodLine {
  id: string;
  text: string;
}

export interface MethodView {
  version: number;
  text: string;
  lines: MethodLine[];
  started: string[];
  completed: string[];
  failed: string[];
}

export interface Finding {
  severity: Severity;
  code?: string;
  message: string;
  line: number;
  col_start?: number;
  col_end?: number;
  suggestion?: string | null;
}

export interface RunLogLine {
  id: string;
  text: string;
  start: number;
  end?: number | null;
  state: LineState;
  progress?: number | null;
  line_id?: string | null;
  user?: string | null;
  error?: string | null;
  /** the failed attempt's run-log id when this line runs it again (fix and resume) */
  retry_of?: string | null;
  cancellable?: boolean;
  forcible?: boolean;
  start_values?: Record<string, Scalar>;
  end_values?: Record<string, Scalar>;
}

export interface RunLog {
  run_id: string | null;
  lines: RunLogLine[];
}

export interface ErrorLogEntry {
  time: number;
  level: Severity;
  message: string;
  source?: string;
}

export interface RunSummary {
  id: string;
  unit_id: string;
  unit_name?: string;
  started: number;
  stopped?: number | null;
  stop_reason?: string | null;
  batch_name?: string | null;
  started_by?: string | null;
  method_version?: number | null;
  sample_count?: number | null;
}

export interface RunDetail extends RunSummary {
  uod: UodDescription;
  method: MethodView;
  methods?: { version: number; time: number; user: string | null; lines: MethodLine[] }[];
  runlog: RunLogLine[];
  errors: ErrorLogEntry[];
  contributors?: { user: string; actions: number; first: number; last: number }[];
}

export interface Page<T> {
  items: T[];
  next: string | null;
}

export interface PlotSeries {
  tag: string;
  unit?: string | null;
  t: number[];
  run_time: number[];
  v: (number | string | null)[];
}

export interface PlotAnnotation {
  t: number;
  run_time: number;
  tag?: string;
  text: string;
}

export interface PlotData {
  x_axis?: string;
  series: PlotSeries[];
  annotations: PlotAnnotation[];
}

export type TaskStatus = "pending" | "working" | "finished" | "exception" | "interrupted";

export interface TaskMessage {
  id: string;
  type: "task";
  status: TaskStatus;
  message?: string;
  data?: { progress?: number; final?: unknown; intermediate?: unknown } | null;
}
