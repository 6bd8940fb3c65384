import { describe, expect, it } from "vitest";
import { type ApiLimits, type AppDeps, createApp } from "../../api/app.js";
import { type Bucket, isIdle, RateLimiter, refill, take } from "../../api/rate-limit.js";
import type { Role } from "../../config/env.js";
import { iso } from "../../contract/time.js";
import { silentLogger } from "../../observe/logger.js";
import { createMetrics } from "../../observe/metrics.js";
import type { HealthService } from "../../services/health.js";
import type { IssueService } from "../../services/issues.js";
import { memoryDeviceServices } from "../support/device-services.js";

const NOW = Date.parse("2025-03-01T12:00:00.000Z");
const DAY = 86_400_000;

const VIEWER = "viewer-token-0001";
const OPERATOR = "operator-token-0001";
const TOKENS = new Map<string, Role>([
  [VIEWER, "viewer"],
  [OPERATOR, "operator"],
]);
const auth = { authorization: `Bearer ${VIEWER}` };
const LIMIT = { rate: 2, burst: 3 };

/** Stores that record what they were asked and find nothing: a refused request never reaches them. */
function recordingStores() {
  const asked: string[] = [];
  const nothing = (name: string) => async () => {
    asked.push(name);
    return undefined;
  };
  const issues = {
    detail: nothing("detail"),
    state: nothing("state"),
    list: async () => {
      asked.push("list");
      return { items: [], total: 0, nextOffset: null };
    },
  } as unknown as IssueService;
  const health = {
    fleetTrend: nothing("fleetTrend"),
    firmwareVersions: nothing("firmwareVersions"),
  } as unknown as HealthService;
  return { asked, issues, health };
}

function app(overrides: Partial<AppDeps> = {}) {
  return createApp({
    ...memoryDeviceServices({}, { now: () => NOW }),
    tokens: TOKENS,
    logger: silentLogger,
    metrics: createMetrics(),
    now: () => NOW,
    ...overrides,
  });
}

async function errorOf(response: Response) {
  expect(response.headers.get("content-type")).toMatch(/^application\/json/);
  const body = (await response.json()) as { error: { code: string; message: string } };
  expect(Object.keys(body)).toEqual(["error"]);
  return { status: response.status, ...body.error };
}

const ISSUE = "Xk3v0Qp9T2bY1aZc";
const FAR = "from=1970-01-01T00:00:00Z&to=2199-12-31T00:00:00Z";

describe("bounded windows and buckets", () => {
  it.each([
    [`/api/v1/issues/${ISSUE}?${FAR}`],
    [`/api/v1/issues/${ISSUE}?from=${iso(NOW - 401 * DAY)}&to=${iso(NOW)}`],
    [`/api/v1/issues?${FAR}`],
    [`/api/v1/fleet/trend?${FAR}`],
    [`/api/v1/fleet/summary?${FAR}`],
    [`/api/v1/firmware?${FAR}`],
    [`/api/v1/firmware/compare?model=M1&baseline=1.0&candidate=1.1&${FAR}`],
  ])("answers 400 before asking the store for more than 400 days of rollups: %s", async (path) => {
    const { asked, issues, health } = recordingStores();
    const response = await app({ issues, health }).request(path, { headers: auth });
    expect(await errorOf(response)).toEqual({
      status: 400,
      code: "BAD_REQUEST",
      message: "from and to span more than 400 days: choose a shorter window",
    });
    expect(asked).toEqual([]);
  });

  it("asks the store for an issue over 400 days, the longest window with a daily trend", async () => {
    const { asked, issues } = recordingStores();
    const response = await app({ issues }).request(
      `/api/v1/issues/${ISSUE}?from=${iso(NOW - 400 * DAY)}&to=${iso(NOW)}`,
      { headers: auth },
    );
    expect(response.status).toBe(404);
    expect(asked).toEqual(["detail"]);
  });

  it.each([
    ["107000d", /^every=107000d is longer than the longest window/],
    ["99999999999999999999999s", /^every=99999999999999999999999s is longer than the longest window/],
    [`${"9".repeat(400)}s`, /is longer than the longest window/],
    ["1e30s", /^query parameter "every": must be a duration/],
  ])("answers 400, never 500, for a bucket width no window can hold: every=%s", async (every, message) => {
    const response = await app().request(
      `/api/v1/devices/modem-0001/telemetry?metric=snr_db&every=${every}`,
      { headers: auth },
    );
    const error = await errorOf(response);
    expect(error).toMatchObject({ status: 400, code: "BAD_REQUEST" });
    expect(error.message).toMatch(message);
  });
});

describe("token bucket", () => {
  it("starts full and gives the burst at once", () => {
    let bucket: Bucket | undefined;
    const taken: boolean[] = [];
    for (let i = 0; i < 4; i++) {
      const result = take(bucket, LIMIT, 0);
      taken.push(result.ok);
      bucket = result.bucket;
    }
    expect(taken).toEqual([true, true, true, false]);
  });

  it("says when the next token comes, and a refusal takes nothing", () => {
    const empty = { tokens: 0, atMs: 0 };
    expect(take(empty, LIMIT, 0)).toEqual({ ok: false, bucket: empty, retryAfterMs: 500 });
    expect(take(empty, LIMIT, 200)).toEqual({
      ok: false,
      bucket: { tokens: 0.4, atMs: 200 },
      retryAfterMs: 300,
    });
    expect(take(empty, LIMIT, 500)).toEqual({ ok: true, bucket: { tokens: 0, atMs: 500 } });
  });

  it.each([
    [{ tokens: 0, atMs: 0 }, 1000, 2],
    [{ tokens: 0, atMs: 0 }, 60_000, 3],
    [{ tokens: 1, atMs: 1000 }, 500, 1],
  ])(
    "refills %j at %i ms to %d tokens, never above the burst nor from a clock going back",
    (bucket, now, tokens) => {
      expect(refill(bucket, LIMIT, now).tokens).toBe(tokens);
    },
  );

  it("is idle once full again", () => {
    expect(isIdle({ tokens: 0, atMs: 0 }, LIMIT, 1000)).toBe(false);
    expect(isIdle({ tokens: 0, atMs: 0 }, LIMIT, 1500)).toBe(true);
  });
});

describe("RateLimiter", () => {
  it("keeps a bucket per client", () => {
    const limiter = new RateLimiter({ rate: 1, burst: 1 });
    expect(limiter.take("a", 0).ok).toBe(true);
    expect(limiter.take("a", 0).ok).toBe(false);
    expect(limiter.take("b", 0).ok).toBe(true);
  });

  it("forgets clients whose buckets have filled up again", () => {
    const limiter = new RateLimiter(LIMIT);
    for (let i = 0; i < 100; i++) limiter.take(`client-${i}`, 0);
    expect(limiter.size).toBe(100);
    limiter.take("late", 1000);
    expect(limiter.size).toBe(1);
  });

  it("holds at most maxClients buckets, dropping the least recently used", () => {
    const limiter = new RateLimiter({ rate: 1, burst: 1 }, 3);
    for (const key of ["a", "b", "c", "d"]) limiter.take(key, 0);
    expect(limiter.size).toBe(3);
    expect(limiter.take("b", 0).ok).toBe(false);
    expect(limiter.take("a", 0).ok).toBe(true);
  });
});

const LIMITS: ApiLimits = { rate: 1, burst: 2, maxBodyBytes: 100 };

/** The app with limits; the clock stands still, so no bucket refills during a test. */
function limitedApp(overrides: Partial<AppDeps> = {}) {
  const metrics = createMetrics();
  return { app: app({ limits: LIMITS, metrics, ...overrides }), metrics };
}

/** As @hono/node-server passes the socket to the app. */
const from = (address: string) => ({ incoming: { socket: { remoteAddress: address } } });

describe("request rate", () => {
  it("answers 429 in the error envelope with Retry-After once a token's burst is spent, and counts it", async () => {
    const { app: limited, metrics } = limitedApp();
    const statuses: number[] = [];
    let last = new Response();
    for (let i = 0; i < 3; i++) {
      last = await limited.request("/api/v1/devices", { headers: auth });
      statuses.push(last.status);
    }
    expect(statuses).toEqual([200, 200, 429]);
    expect(last.headers.get("retry-after")).toBe("1");
    expect(await errorOf(last)).toEqual({
      status: 429,
      code: "RATE_LIMITED",
      message: "more than 1 requests per second (burst 2): try again later",
    });
    expect((await metrics.apiRateLimited.get()).values[0]?.value).toBe(1);
  });

  it("gives each token its own bucket", async () => {
    const { app: limited } = limitedApp();
    for (let i = 0; i < 3; i++) await limited.request("/api/v1/devices", { headers: auth });
    const other = await limited.request("/api/v1/devices", {
      headers: { authorization: `Bearer ${OPERATOR}` },
    });
    expect(other.status).toBe(200);
  });

  it("counts requests without a valid token against their address, whatever token they try", async () => {
    const { app: limited } = limitedApp();
    const guess = (token: string, address: string) =>
      limited.request("/api/v1/devices", { headers: { authorization: `Bearer ${token}` } }, from(address));
    expect((await guess("guess-0001", "10.0.0.1")).status).toBe(401);
    expect((await guess("guess-0002", "10.0.0.1")).status).toBe(401);
    expect((await guess("guess-0003", "10.0.0.1")).status).toBe(429);
    expect((await guess("guess-0004", "10.0.0.2")).status).toBe(401);
    const valid = await limited.request("/api/v1/devices", { headers: auth }, from("10.0.0.1"));
    expect(valid.status).toBe(200);
  });

  it("shares one bucket among requests whose address is unknown", async () => {
    const { app: limited } = limitedApp();
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await limited.request("/api/v1/openapi.json")).status);
    expect(statuses).toEqual([200, 200, 429]);
  });

  it("leaves health and metrics unlimited for probes and scrapers", async () => {
    const { app: limited } = limitedApp();
    for (let i = 0; i < 3; i++) await limited.request("/api/v1/devices");
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      statuses.push((await limited.request("/api/v1/health")).status);
      statuses.push((await limited.request("/metrics")).status);
    }
    expect(new Set(statuses)).toEqual(new Set([200]));
  });

  it("limits nothing without limits (in-process callers)", async () => {
    const unlimited = app();
    const statuses = new Set<number>();
    for (let i = 0; i < 20; i++)
      statuses.add((await unlimited.request("/api/v1/devices", { headers: auth })).status);
    expect(statuses).toEqual(new Set([200]));
  });
});

describe("request body size", () => {
  const note = (body: string | ReadableStream<Uint8Array>, headers: Record<string, string> = {}) => {
    const { issues } = recordingStores();
    const init = {
      method: "POST",
      headers: { authorization: `Bearer ${OPERATOR}`, "content-type": "application/json", ...headers },
      body,
      // A stream body needs it (fetch's half-duplex rule).
      duplex: "half" as const,
    };
    return limitedApp({ issues }).app.request(`/api/v1/issues/${ISSUE}/notes`, init);
  };

  it("answers 413 in the error envelope for a body whose Content-Length is over the limit", async () => {
    const body = JSON.stringify({ text: "x".repeat(200) });
    expect(await errorOf(await note(body, { "content-length": String(body.length) }))).toEqual({
      status: 413,
      code: "PAYLOAD_TOO_LARGE",
      message: "the request body is larger than 100 bytes",
    });
  });

  it("answers 413 for a streamed body without a length once it passes the limit", async () => {
    const chunks = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 10; i++) controller.enqueue(new TextEncoder().encode(`"${"y".repeat(30)}",`));
        controller.close();
      },
    });
    const response = await note(chunks, { "transfer-encoding": "chunked" });
    expect(await errorOf(response)).toMatchObject({ status: 413, code: "PAYLOAD_TOO_LARGE" });
  });

  it("passes a body within the limit on to the route", async () => {
    // The recording store knows no issue: the route ran and answered 404.
    const response = await note(JSON.stringify({ text: "fits" }));
    expect(await errorOf(response)).toMatchObject({ status: 404, code: "NOT_FOUND" });
  });
});

describe("the OpenAPI document", () => {
  it("still generates, and documents 429 with Retry-After on every guarded route and 413 on every POST", async () => {
    const { issues, health } = recordingStores();
    const response = await app({ issues, health, limits: LIMITS }).request("/api/v1/openapi.json");
    expect(response.status).toBe(200);
    const doc = (await response.json()) as {
      paths: Record<
        string,
        Record<string, { security?: unknown; responses: Record<string, { headers?: object }> }>
      >;
    };
    const operations = Object.values(doc.paths).flatMap((path) => Object.values(path));
    const guarded = operations.filter((op) => op.security !== undefined);
    expect(guarded.length).toBeGreaterThan(10);
    for (const op of guarded) {
      expect(op.responses["429"]?.headers).toHaveProperty("Retry-After");
    }
    const posts = Object.values(doc.paths).flatMap((path) => (path.post ? [path.post] : []));
    // The issue changes (4), a command and a bulk command, an alert's acknowledgement, feedback.
    expect(posts).toHaveLength(8);
    for (const op of posts) expect(op.responses).toHaveProperty("413");
  });
});
