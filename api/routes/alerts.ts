import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Schema } from "hono";
import type { AlertService } from "../../services/alerts.js";
import type { ApiEnv } from "../auth.js";

// STUB: being built (issue 13).

export type AlertsRouteDeps = { alerts: AlertService; now?: () => number };

export function registerAlerts<S extends Schema>(app: OpenAPIHono<ApiEnv, S>, _deps: AlertsRouteDeps) {
  return app;
}
