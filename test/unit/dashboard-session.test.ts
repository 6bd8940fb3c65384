import { describe, expect, it } from "vitest";
import { type ApiLimits, createApp } from "../../api/app.js";
import type { Role, TokenHolder } from "../../config/env.js";
import { mountDashboard } from "../../dashboard/mount.js";
import { SESSION_COOKIE, safeNext } from "../../dashboard/session.js";
import { silentLogger } from "../../observe/logger.js";
import { createMetrics } from "../../observe/metrics.js";
import { memoryDeviceServices } from "../support/device-services.js";

// The dashboard's session over the API's own token check, through the app as the API process serves it.

const NOW = Date.parse("2025-03-01T12:00:00.000Z");
const VIEWER = "viewer-token-0001";
const OPERATOR = "operator-token-0001";
const ANA = "ana-operator-token-0001";
const TOKENS = new Map<string, Role | TokenHolder>([
  [VIEWER, "viewer"],
  [OPERATOR, "operator"],
  [ANA, { role: "operator", name: "Ana Lima" }],
]);
const ORIGIN = "http://fieldq.test";

function dashboard(limits?: ApiLimits) {
  const app = createApp({
    ...memoryDeviceServices({}, { now: () => NOW }),
    tokens: TOKENS,
    logger: silentLogger,
    metrics: createMetrics(),
    now: () => NOW,
    limits,
  });
  mountDashboard(app, { tokens: TOKENS, logger: silentLogger, limits, now: () => NOW });
  const request = (path: string, init: RequestInit = {}) => app.request(`${ORIGIN}${path}`, init);
  const signIn = (token: string, next = "/", origin = ORIGIN) =>
    request("/sign-in", {
      method: "POST",
      headers: { origin, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token, next }).toString(),
    });
  return { app, request, signIn };
}

const cookieOf = (response: Response) => response.headers.get("set-cookie") ?? "";
const session = (token: string) => ({ cookie: `${SESSION_COOKIE}=${token}` });

describe("signing in to the dashboard", () => {
  it("keeps a valid token in an HttpOnly cookie, never in the URL, and goes where the user was headed", async () => {
    const { signIn } = dashboard();
    const response = await signIn(VIEWER, "/issues?status=new");
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toBe("/issues?status=new");
    expect(cookieOf(response)).toMatch(
      new RegExp(`^${SESSION_COOKIE}=${VIEWER}; Path=/; HttpOnly; SameSite=Lax`),
    );
    expect(response.headers.get("location")).not.toContain(VIEWER);
  });

  it("refuses a wrong token with a clear message and sets no cookie", async () => {
    const { signIn } = dashboard();
    const response = await signIn("not-a-token-at-all");
    expect(response.status).toBe(401);
    expect(cookieOf(response)).toBe("");
    expect(await response.text()).toContain("That token is not valid");
  });

  it.each([
    ["https://evil.example/", "/"],
    ["//evil.example/x", "/"],
    ["/\\evil.example", "/"],
    ["issues", "/"],
    ["/devices/abc?window=7d", "/devices/abc?window=7d"],
  ])("sends %s on to a path of this site only (%s)", (next, expected) => {
    expect(safeNext(next)).toBe(expected);
  });

  it("refuses a sign-in or an action posted from another site's page", async () => {
    const { signIn, request } = dashboard();
    expect((await signIn(VIEWER, "/", "https://evil.example")).status).toBe(403);
    const action = await request("/issues/abc/transition", {
      method: "POST",
      headers: { ...session(OPERATOR), "content-type": "application/x-www-form-urlencoded" },
      body: "to=acknowledged",
    });
    expect(action.status).toBe(403);
  });

  it("forgets the token at sign-out", async () => {
    const { request } = dashboard();
    const response = await request("/sign-out", {
      method: "POST",
      headers: { ...session(VIEWER), origin: ORIGIN },
    });
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toBe("/sign-in");
    expect(cookieOf(response)).toMatch(new RegExp(`^${SESSION_COOKIE}=; Max-Age=0`));
  });
});

describe("pages", () => {
  it("send a signed-out visitor to sign in and back, and answer a live refresh 401", async () => {
    const { request } = dashboard();
    const page = await request("/devices?q=abc");
    expect(page.status).toBe(303);
    expect(page.headers.get("location")).toBe(`/sign-in?next=${encodeURIComponent("/devices?q=abc")}`);
    expect((await request("/devices", { headers: { "x-fieldq-live": "1" } })).status).toBe(401);
    const stale = await request("/", { headers: session("revoked-token-0001") });
    expect(stale.status).toBe(303);
  });

  it("say who is signed in by the token holder's name, and the role beside it", async () => {
    const { request, signIn } = dashboard();
    expect((await signIn(ANA)).status).toBe(303);
    const html = await (await request("/silence", { headers: session(ANA) })).text();
    expect(html).toContain("Signed in as <strong>Ana Lima</strong> (operator)</span>");
  });

  it("serve a signed-in page with its hashed script and stylesheet, kept a year", async () => {
    const { request } = dashboard();
    const page = await request("/silence", { headers: session(VIEWER) });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html.startsWith("<!DOCTYPE html>")).toBe(true);
    // A role:token entry is named after its role, so the role is not said twice.
    expect(html).toContain("Signed in as <strong>viewer</strong></span>");
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self';");
    expect(page.headers.get("cache-control")).toBe("no-store");
    const script = /src="(\/assets\/app-[A-Z0-9]+\.js)"/.exec(html)?.[1];
    const style = /href="(\/assets\/style-[A-Z0-9]+\.css)"/.exec(html)?.[1];
    for (const path of [script, style]) {
      const asset = await request(path ?? "/assets/none");
      expect(asset.status).toBe(200);
      expect(asset.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    }
    expect((await request("/assets/app-NOPE.js")).status).toBe(404);
  });

  it("leave the API as it was: bearer tokens only, JSON errors, no session cookie honoured", async () => {
    const { request } = dashboard();
    const response = await request("/api/v1/devices", { headers: session(VIEWER) });
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ error: { code: "UNAUTHORIZED" } });
  });

  it("count each page once against its session's rate, not each API call the page makes", async () => {
    const { request } = dashboard({ rate: 0.001, burst: 2, maxBodyBytes: 65_536 });
    const headers = session(VIEWER);
    expect((await request("/devices", { headers })).status).toBe(200);
    expect((await request("/devices", { headers })).status).toBe(200);
    const third = await request("/devices", { headers });
    expect(third.status).toBe(429);
    expect(third.headers.get("retry-after")).not.toBeNull();
    // The API's own bucket for the same token is untouched by the pages' in-process calls.
    const api = await request("/api/v1/devices", { headers: { authorization: `Bearer ${VIEWER}` } });
    expect(api.status).toBe(200);
  });
});
