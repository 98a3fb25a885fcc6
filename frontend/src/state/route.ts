// Hash routes: the aggregator serves one index.html, and a hash route survives reloads anywhere.

export type Route =
  | { name: "dashboard" }
  | { name: "unit"; id: string }
  | { name: "runs"; q: string; unit: string }
  | { name: "run"; id: string }
  | { name: "alarms" }
  | { name: "settings" }
  | { name: "methods" }
  | { name: "method"; id: string }
  | { name: "audit" }
  | { name: "notFound"; path: string };

export function parseRoute(hash: string): Route {
  const raw = hash.replace(/^#/, "") || "/";
  const [path = "/", query = ""] = raw.split("?", 2);
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query);
  if (parts.length === 0) return { name: "dashboard" };
  if (parts[0] === "units" && parts.length === 2) return { name: "unit", id: parts[1]! };
  if (parts[0] === "runs" && parts.length === 1)
    return { name: "runs", q: params.get("q") ?? "", unit: params.get("unit") ?? "" };
  if (parts[0] === "runs" && parts.length === 2) return { name: "run", id: parts[1]! };
  if (parts[0] === "alarms" && parts.length === 1) return { name: "alarms" };
  if (parts[0] === "settings" && parts.length === 1) return { name: "settings" };
  if (parts[0] === "methods" && parts.length === 1) return { name: "methods" };
  if (parts[0] === "methods" && parts.length === 2) return { name: "method", id: parts[1]! };
  if (parts[0] === "audit" && parts.length === 1) return { name: "audit" };
  return { name: "notFound", path };
}

export function href(route: Route): string {
  switch (route.name) {
    case "dashboard":
      return "#/";
    case "unit":
      return `#/units/${encodeURIComponent(route.id)}`;
    case "runs": {
      const p = new URLSearchParams();
      if (route.q) p.set("q", route.q);
      if (route.unit) p.set("unit", route.unit);
      const s = p.toString();
      return `#/runs${s ? `?${s}` : ""}`;
    }
    case "run":
      return `#/runs/${encodeURIComponent(route.id)}`;
    case "alarms":
      return "#/alarms";
    case "settings":
      return "#/settings";
    case "methods":
      return "#/methods";
    case "method":
      return `#/methods/${encodeURIComponent(route.id)}`;
    case "audit":
      return "#/audit";
    case "notFound":
      return `#${route.path}`;
  }
}
