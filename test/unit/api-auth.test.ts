import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { type ApiEnv, authenticate, requireRole } from "../../api/auth.js";
import { ApiError, codeToStatus, handleError, handleNotFound } from "../../api/errors.js";
import {
  MAX_BUCKETS,
  MAX_EVERY_MS,
  resolveAnalyticsWindow,
  resolveEvery,
  resolveWindow,
} from "../../api/time-window.js";
import type { Role } from "../../config/env.js";
import { ERROR_CODES } from "../../contract/api/common.js";
import { silentLogger } from "../../observe/logger.js";

const TOKENS = new Map<string, Role>([
  ["viewer-token-01", "viewer"],
  ["operator-token-01", "operator"],
  ["admin-token-0001", "admin"],
]);

/** A test-only app with one route per minimum role, as later POST routes will use them. */
function guarded() {
  const app = new Hono<ApiEnv>();
  app.onError(handleError(silentLogger));
  app.notFound(handleNotFound);
  app.use("*", authenticate(TOKENS));
  for (const role of ["viewer", "operator", "admin"] as const) {
    app.post(`/${role}`, requireRole(role), (c) => c.json({ ok: true, as: c.get("credentials").role }));
  }
  return app;
}

const post = (path: string, token?: string) =>
  guarded().request(path, {
    method: "POST",
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  });

describe("requireRole", () => {
  it.each([
    ["viewer-token-01", "viewer", 200],
    ["viewer-token-01", "operator", 403],
    ["viewer-token-01", "admin", 403],
    ["operator-token-01", "viewer", 200],
    ["operator-token-01", "operator", 200],
    ["operator-token-01", "admin", 403],
    ["admin-token-0001", "viewer", 200],
    ["admin-token-0001", "operator", 200],
    ["admin-token-0001", "admin", 200],
  ])("lets %s reach a route for %s: %i", async (token, role, status) => {
    const response = await post(`/${role}`, token);
    expect(response.status).toBe(status);
    if (status === 200) expect(await response.json()).toEqual({ ok: true, as: TOKENS.get(token) });
  });

  it("answers 403 with the envelope naming the role needed and the role held", async () => {
    const response = await post("/admin", "operator-token-01");
    expect(await response.json()).toEqual({
      error: { code: "FORBIDDEN", message: "this needs the admin role; the token has operator" },
    });
    expect(response.headers.get("www-authenticate")).toBeNull();
  });

  it("answers 401 before 403 when the token is missing", async () => {
    const response = await post("/admin");
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toBe('Bearer realm="fieldq"');
  });

  it.each([1, 7, 15, 16, 17, 4000])(
    "compares digests, not the tokens: a token of %i characters is refused with 401, never an error",
    async (length) => {
      const response = await post("/viewer", "v".repeat(length));
      expect(response.status).toBe(401);
      expect(await response.json()).toMatchObject({ error: { code: "UNAUTHORIZED" } });
    },
  );

  it("accepts the scheme name in any case", async () => {
    const response = await guarded().request("/viewer", {
      method: "POST",
      headers: { authorization: "bearer viewer-token-01" },
    });
    expect(response.status).toBe(200);
  });

  it("treats a route without authenticate in front as unauthenticated", async () => {
    const app = new Hono<ApiEnv>();
    app.onError(handleError(silentLogger));
    app.get("/x", requireRole("viewer"), (c) => c.text("never"));
    expect((await app.request("/x")).status).toBe(401);
  });
});

describe("error codes", () => {
  it.each(ERROR_CODES.map((code) => [code]))("maps %s to its own status and envelope", async (code) => {
    const app = new Hono();
    app.onError(handleError(silentLogger));
    app.get("/", () => {
      throw new ApiError({ code, message: `a ${code}` });
    });
    const response = await app.request("/");
    expect(response.status).toBe(codeToStatus(code));
    expect(await response.json()).toEqual({ error: { code, message: `a ${code}` } });
  });

  it("gives every code a distinct status", () => {
    expect(new Set(ERROR_CODES.map(codeToStatus)).size).toBe(ERROR_CODES.length);
  });
});

describe("time windows", () => {
  const NOW = Date.parse("2025-03-01T12:00:00Z");

  it("defaults to now and the given span before it", () => {
    expect(resolveWindow({}, NOW, 3_600_000)).toEqual({ fromMs: NOW - 3_600_000, toMs: NOW });
    expect(resolveWindow({ to: "2025-03-01T10:00:00+01:00" }, NOW, 1000)).toEqual({
      fromMs: Date.parse("2025-03-01T09:00:00Z") - 1000,
      toMs: Date.parse("2025-03-01T09:00:00Z"),
    });
  });

  it.each([
    [60_000, 1000],
    [500_000, 1000],
    [500_001, 5000],
    [6 * 3_600_000, 60_000],
    [24 * 3_600_000, 300_000],
    [90 * 86_400_000, 6 * 3_600_000],
    [400 * 86_400_000, 86_400_000],
    [20 * 365 * 86_400_000, Math.ceil((20 * 365 * 86_400_000) / MAX_BUCKETS)],
  ])("chooses the smallest step for a span of %i ms: %i ms", (span, every) => {
    expect(resolveEvery(undefined, span)).toBe(every);
  });

  it("refuses a bucket wider than the longest window, which InfluxDB could not hold in nanoseconds", () => {
    const span = 3_600_000;
    expect(resolveEvery("84006d", span)).toBe(MAX_EVERY_MS);
    expect(() => resolveEvery("84007d", span)).toThrow(
      "every=84007d is longer than the longest window (84006d, 1970 to 2200)",
    );
    expect(() => resolveEvery(`${"9".repeat(400)}s`, span)).toThrow("is longer than the longest window");
  });

  it("bounds a daily series to 400 days of whole hours", () => {
    const to = "2025-03-01T12:00:00Z";
    const days = (n: number) => new Date(Date.parse(to) - n * 86_400_000).toISOString();
    expect(resolveAnalyticsWindow({ from: days(400), to }, NOW, 0)).toEqual({
      fromMs: Date.parse(days(400)),
      toMs: Date.parse(to),
    });
    // One minute more widens to one hour more once aligned.
    expect(() =>
      resolveAnalyticsWindow({ from: new Date(Date.parse(days(400)) - 60_000).toISOString(), to }, NOW, 0),
    ).toThrow("from and to span more than 400 days");
  });

  it("takes an explicit every that fits and refuses one that does not", () => {
    expect(resolveEvery("5m", 6 * 3_600_000)).toBe(300_000);
    expect(resolveEvery("1s", 500_000)).toBe(1000);
    expect(() => resolveEvery("1s", 500_001)).toThrow("every=1s gives 501 buckets, more than 500");
  });
});
