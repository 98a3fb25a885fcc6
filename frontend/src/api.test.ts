import { describe, expect, it } from "vitest";
import { ApiError, createApi } from "./api";

function fakeFetch(status: number, body: unknown, seen: { url: string; init: RequestInit }[] = []): typeof fetch {
  return (async (url: string, init: RequestInit) => {
    seen.push({ url, init });
    return new Response(body === undefined ? null : JSON.stringify(body), { status });
  }) as unknown as typeof fetch;
}

describe("api", () => {
  it("logs in, keeps the token and sends it as a bearer", async () => {
    const seen: { url: string; init: RequestInit }[] = [];
    const api = createApi(fakeFetch(200, { token: "t1", user: { name: "a", role: "admin" } }, seen));
    await api.login("a", "pw");
    await api.units();
    expect(api.token).toBe("t1");
    expect((seen[1]!.init.headers as Record<string, string>).Authorization).toBe("Bearer t1");
    expect(seen[0]!.init.body).toBe(JSON.stringify({ username: "a", password: "pw" }));
  });
  it("encodes unit ids (they contain slashes) and sends line ids with a save", async () => {
    const seen: { url: string; init: RequestInit }[] = [];
    const api = createApi(fakeFetch(200, { version: 2, findings: [] }, seen));
    await api.saveMethod("vm/Chrom", "Mark: A", 1, ["l1"]);
    expect(seen[0]!.url).toBe("/api/units/vm%2FChrom/method");
    expect(JSON.parse(seen[0]!.init.body as string)).toEqual({ text: "Mark: A", expected_version: 1, line_ids: ["l1"] });
  });
  it("sends every change as JSON, body-less ones too (the server refuses other cookie changes)", async () => {
    const seen: { url: string; init: RequestInit }[] = [];
    const api = createApi(fakeFetch(200, {}, seen));
    await api.logout();
    await api.cancelLine("u", "l1");
    await api.units();
    const type = (i: number) => (seen[i]!.init.headers as Record<string, string>)["Content-Type"];
    expect([type(0), type(1), type(2)]).toEqual(["application/json", "application/json", undefined]);
    expect(seen[0]!.init.body).toBeUndefined();
  });
  it("turns error bodies into ApiError with status, message and field", async () => {
    const api = createApi(fakeFetch(409, { error: "version 3 is current", field: "expected_version" }));
    const err = await api.saveMethod("u", "x", 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 409, message: "version 3 is current", field: "expected_version" });
  });
  it("reports an ended session once a call gets 401", async () => {
    const api = createApi(fakeFetch(401, { error: "not logged in" }));
    let ended = 0;
    api.onUnauthorized = () => ended++;
    await expect(api.units()).rejects.toBeInstanceOf(ApiError);
    await expect(api.me()).rejects.toBeInstanceOf(ApiError);
    expect(ended).toBe(1);
  });
  it("builds run query strings without empty parameters", async () => {
    const seen: { url: string; init: RequestInit }[] = [];
    const api = createApi(fakeFetch(200, { items: [], next: null }, seen));
    await api.runs({ q: "load", unit_id: "", cursor: null, limit: 20 });
    expect(seen[0]!.url).toBe("/api/runs?q=load&limit=20");
  });
  it("fetches the CSV as a response to stream, or ApiError for an error status", async () => {
    const seen: { url: string; init: RequestInit }[] = [];
    const ok = createApi((async (url: string, init: RequestInit) => {
      seen.push({ url, init });
      return new Response("h\n1\n", { status: 200 });
    }) as unknown as typeof fetch);
    ok.token = "t1";
    const res = await ok.runCsv("r/1");
    expect(await res.text()).toBe("h\n1\n");
    expect(seen[0]!.url).toBe("/api/runs/r%2F1/csv");
    expect(seen[0]!.init.credentials).toBe("same-origin");
    expect((seen[0]!.init.headers as Record<string, string>).Authorization).toBe("Bearer t1");
    const denied = createApi(fakeFetch(403, { error: "run 'r' belongs to a unit you may not see" }));
    await expect(denied.runCsv("r")).rejects.toMatchObject({ status: 403, message: "run 'r' belongs to a unit you may not see" });
    const offline = createApi((async () => {
      throw new TypeError("Failed to fetch");
    }) as unknown as typeof fetch);
    await expect(offline.runCsv("r")).rejects.toMatchObject({ status: 0, message: "The server cannot be reached" });
  });
});
