// Choices a user makes in the UI that should outlive the page: kept in the browser's storage, per
// user name (the API has no user preferences). Storage may be missing or full (private windows):
// then the choice lasts only as long as the page.

export interface KeyValueStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

const X_AXIS_KEY = "setpoint.plot.xAxis";

function read(store: KeyValueStore | null, user: string): Record<string, string> {
  try {
    const raw = store?.getItem(`${X_AXIS_KEY}.${user}`);
    const parsed: unknown = raw ? JSON.parse(raw) : {};
    return parsed && typeof parsed === "object" && !Array.isArray(parsed) ? (parsed as Record<string, string>) : {};
  } catch {
    return {};
  }
}

/** The x axis this user last chose for plots of this UOD, when the plot still offers it. */
export function loadXAxis(store: KeyValueStore | null, user: string, uod: string, choices: readonly string[]): string | null {
  const axis = read(store, user)[uod];
  return typeof axis === "string" && choices.includes(axis) ? axis : null;
}

export function saveXAxis(store: KeyValueStore | null, user: string, uod: string, axis: string): void {
  const all = read(store, user);
  all[uod] = axis;
  try {
    store?.setItem(`${X_AXIS_KEY}.${user}`, JSON.stringify(all));
  } catch {
    /* storage full or refused: the choice holds for this page only */
  }
}

/** The browser's localStorage, or null where there is none (tests, locked-down browsers). */
export function browserStore(): KeyValueStore | null {
  try {
    return typeof localStorage === "undefined" ? null : localStorage;
  } catch {
    return null;
  }
}
