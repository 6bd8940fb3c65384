import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { Schema } from "hono";
import { Health, NoQuery } from "../../contract/api/common.js";
import type { Logger } from "../../observe/logger.js";
import type { ApiEnv } from "../auth.js";
import { errorResponse } from "../errors.js";

/** Whether InfluxDB answers, and how fast. */
export type Ping = () => Promise<{ ok: boolean; latencyMs: number }>;

export type StackStatus = () => { journalBacklog: number; connectedDevices: number };

export const healthRoute = createRoute({
  method: "get",
  path: "/api/v1/health",
  summary: "Whether the API can reach InfluxDB; needs no token",
  request: { query: NoQuery },
  responses: {
    200: { description: "InfluxDB is reachable", content: { "application/json": { schema: Health } } },
    400: errorResponse("A query parameter was given: this route takes none"),
    503: { description: "InfluxDB is not reachable", content: { "application/json": { schema: Health } } },
  },
});

export function registerHealth<S extends Schema>(
  app: OpenAPIHono<ApiEnv, S>,
  deps: { ping: Ping; logger: Logger; status?: StackStatus | undefined },
) {
  return app.openapi(healthRoute, async (c) => {
    const influx = await deps.ping().catch((err: unknown) => {
      deps.logger.warn({ err }, "InfluxDB ping failed");
      return { ok: false, latencyMs: 0 };
    });
    const stack = deps.status?.();
    const body: Health = {
      status: influx.ok ? "ok" : "unavailable",
      influx: { reachable: influx.ok, latencyMs: influx.latencyMs },
      journalBacklog: stack?.journalBacklog ?? null,
      connectedDevices: stack?.connectedDevices ?? null,
    };
    return influx.ok ? c.json(body, 200) : c.json(body, 503);
  });
}
