// The application's signal stores, created once in main.tsx and handed to views through AppContext.

import { signal, type Signal } from "@preact/signals";
import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { Api } from "../api";
import type { ConnectionInfo, LiveClient } from "../ws";
import type { UnitSummary, User } from "../types";
import { mergeUnits, stampReceived } from "./merge";
import { parseRoute, type Route } from "./route";

export interface Toast {
  id: number;
  kind: "info" | "error" | "success";
  text: string;
}

export interface AppState {
  api: Api;
  live: LiveClient;
  user: Signal<User | null>;
  authChecked: Signal<boolean>;
  connection: Signal<ConnectionInfo>;
  units: Signal<UnitSummary[]>;
  unitsLoaded: Signal<boolean>;
  route: Signal<Route>;
  toasts: Signal<Toast[]>;
  /** wall clock in epoch seconds, ticking once a second (ages, "stale since") */
  now: Signal<number>;
  notify(kind: Toast["kind"], text: string): void;
  dismiss(id: number): void;
  signIn(user: User): void;
  signOut(): Promise<void>;
}

export function createAppState(api: Api, makeLive: (onStatus: (i: ConnectionInfo) => void) => LiveClient): AppState {
  const connection = signal<ConnectionInfo>({ status: "closed", attempt: 0, nextRetryAt: null, everConnected: false });
  const live = makeLive((info) => {
    connection.value = info;
  });
  const units = signal<UnitSummary[]>([]);
  const unitsLoaded = signal(false);
  const toasts = signal<Toast[]>([]);
  const user = signal<User | null>(null);
  let toastSeq = 0;
  let offUnits: (() => void) | null = null;

  const state: AppState = {
    api,
    live,
    user,
    authChecked: signal(false),
    connection,
    units,
    unitsLoaded,
    route: signal(parseRoute(typeof location === "undefined" ? "" : location.hash)),
    toasts,
    now: signal(Date.now() / 1000),
    notify(kind, text) {
      const id = ++toastSeq;
      toasts.value = [...toasts.value.slice(-4), { id, kind, text }];
      if (kind !== "error") setTimeout(() => state.dismiss(id), 4000);
    },
    dismiss(id) {
      toasts.value = toasts.value.filter((t) => t.id !== id);
    },
    signIn(u) {
      user.value = u;
      offUnits?.();
      offUnits = live.subscribe("units", (kind, data) => {
        const now = Date.now() / 1000;
        if (kind === "snapshot") {
          units.value = mergeUnits([], stampReceived((data as UnitSummary[]) ?? [], now));
          unitsLoaded.value = true;
        } else units.value = mergeUnits(units.value, stampReceived(data as UnitSummary | UnitSummary[], now));
      });
      live.start();
      // The list also comes over HTTP so the dashboard fills even before the socket is up.
      api
        .units()
        .then((list) => {
          if (!unitsLoaded.value) {
            units.value = mergeUnits([], stampReceived(list, Date.now() / 1000));
            unitsLoaded.value = true;
          }
        })
        .catch(() => {});
    },
    async signOut() {
      offUnits?.();
      offUnits = null;
      live.stop();
      try {
        await api.logout();
      } catch {
        /* the session is gone either way */
      }
      user.value = null;
      units.value = [];
      unitsLoaded.value = false;
    },
  };
  api.onUnauthorized = () => {
    if (!user.value) return;
    offUnits?.();
    offUnits = null;
    live.stop();
    api.token = null;
    user.value = null;
    state.notify("error", "Your session has ended. Please sign in again.");
  };
  return state;
}

export const AppContext = createContext<AppState | null>(null);

export function useApp(): AppState {
  const s = useContext(AppContext);
  if (!s) throw new Error("AppContext missing");
  return s;
}
