import { describe, expect, it } from "vitest";
import { createApp } from "../../api/app.js";
import { createApiClient } from "../../api/client.js";
import type { Role } from "../../config/env.js";
import { ErrorEnvelope } from "../../contract/api/common.js";
import { silentLogger } from "../../observe/logger.js";
import { createMetrics } from "../../observe/metrics.js";
import { memoryDeviceServices } from "../support/device-services.js";

// The API's contract as a caller meets it: every route refuses a query parameter it does not take (naming
// it), a POST body must be JSON, and the typed client reaches the routes the document lists.

const ADMIN = "admin-token-0001";
const TOKENS = new Map<string, Role>([[ADMIN, "admin"]]);
const NOW = Date.parse("2025-03-01T12:00:00.000Z");

function app() {
  return createApp({
    ...memoryDeviceServices({}, { now: () => NOW }),
    tokens: TOKENS,
    logger: silentLogger,
    metrics: createMetrics(),
    now: () => NOW,
  });
}

type Operation = { parameters?: Array<{ name: string; in: string; required?: boolean }> };

async function operations() {
  const doc = (await (await app().request("/api/v1/openapi.json")).json()) as {
    paths: Record<string, Record<string, Operation>>;
  };
  return Object.entries(doc.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, op]) => ({ method: method.toUpperCase(), path, op })),
  );
}

/** The path with each {param} filled with a value its pattern accepts. */
const concrete = (path: string) => path.replace(/\{[^}]+\}/g, "x1");

describe("every route refuses an unknown query parameter", async () => {
  const all = await operations();

  it("lists the routes", () => {
    expect(all.length).toBeGreaterThanOrEqual(17);
  });

  it.each(all.map((o) => [`${o.method} ${o.path}`, o] as const))("%s", async (_, { method, path }) => {
    const response = await app().request(`${concrete(path)}?devise=modem-1`, {
      method,
      headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
      ...(method === "POST" ? { body: "{}" } : {}),
    });
    expect(response.status).toBe(400);
    const body = ErrorEnvelope.parse(await response.json());
    expect(body.error.code).toBe("BAD_REQUEST");
    expect(body.error.message).toContain('unknown query parameter "devise"');
  });
});

describe("request bodies", () => {
  it("answers a POST whose body is not JSON with 415 UNSUPPORTED_MEDIA_TYPE, a code the error table lists", async () => {
    const response = await app().request("/api/v1/issues/x1/notes", {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN}`, "content-type": "text/plain" },
      body: "a note",
    });
    expect(response.status).toBe(415);
    expect(ErrorEnvelope.parse(await response.json()).error.code).toBe("UNSUPPORTED_MEDIA_TYPE");
  });
});

describe("a service the API was built without", () => {
  it("documents its routes and answers them 503 UNAVAILABLE, saying which", async () => {
    const response = await app().request("/api/v1/issues", { headers: { authorization: `Bearer ${ADMIN}` } });
    expect(response.status).toBe(503);
    expect(ErrorEnvelope.parse(await response.json()).error).toEqual({
      code: "UNAVAILABLE",
      message: "this API serves no issues",
    });
  });
});

describe("the typed client", () => {
  it("asks a route with typed query parameters and reads its typed answer", async () => {
    const server = app();
    const client = createApiClient("http://fieldq.test", {
      token: ADMIN,
      fetch: async (input, init) => server.request(input instanceof Request ? input : String(input), init),
    });
    const response = await client.api.v1.devices.$get({ query: { q: "nothing-like-this" } });
    expect(response.status).toBe(200);
    if (response.status !== 200) return;
    const page = await response.json();
    expect(page).toMatchObject({ items: [], total: 0, nextOffset: null });
  });

  it("asks the cohort ranking with its typed query, and reads the 503 of an API without fleet health", async () => {
    const server = app();
    const client = createApiClient("http://fieldq.test", {
      token: ADMIN,
      fetch: async (input, init) => server.request(input instanceof Request ? input : String(input), init),
    });
    const response = await client.api.v1.fleet.cohorts.$get({ query: { kind: "modem", dimension: "isp" } });
    expect(response.status).toBe(503);
    expect(ErrorEnvelope.parse(await response.json()).error.message).toBe("this API serves no fleet health");
  });

  it("gets the error envelope of a refused request", async () => {
    const server = app();
    const client = createApiClient("http://fieldq.test", {
      token: ADMIN,
      fetch: async (input, init) => server.request(input instanceof Request ? input : String(input), init),
    });
    const response = await client.api.v1.devices[":id"].$get({ param: { id: "nobody-here" }, query: {} });
    expect(response.status).toBe(404);
    expect(ErrorEnvelope.parse(await response.json()).error.code).toBe("NOT_FOUND");
  });
});
