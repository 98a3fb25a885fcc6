// Web push in this browser: register the service worker (public/sw.js), ask permission, subscribe
// with the aggregator's VAPID key and hand the subscription to the server.

import type { Api } from "../api";
import { addPushSubscription } from "./alarmsApi";

export function pushSupported(): boolean {
  return typeof navigator !== "undefined" && "serviceWorker" in navigator && typeof window !== "undefined" && "PushManager" in window;
}

export function keyBytes(base64url: string): Uint8Array<ArrayBuffer> {
  const b64 = (base64url + "=".repeat((4 - (base64url.length % 4)) % 4)).replace(/-/g, "+").replace(/_/g, "/");
  const raw = atob(b64);
  const out = new Uint8Array(new ArrayBuffer(raw.length));
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

export async function subscribeThisBrowser(api: Api, vapidKey: string): Promise<void> {
  if (!pushSupported()) throw new Error("this browser cannot receive web push (or the page is not on HTTPS)");
  const registration = await navigator.serviceWorker.register("/sw.js");
  const permission = await Notification.requestPermission();
  if (permission !== "granted") throw new Error("notifications are blocked for this site in the browser's settings");
  const existing = await registration.pushManager.getSubscription();
  const subscription = existing ?? (await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(vapidKey) }));
  await addPushSubscription(api, subscription.toJSON());
}
