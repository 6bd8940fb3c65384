import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Schema } from "hono";
import type { ReviewService } from "../../services/review.js";
import type { ApiEnv } from "../auth.js";

// STUB: being built (issue 13).

export type ReportsRouteDeps = { review: ReviewService; now?: () => number };

export function registerReports<S extends Schema>(app: OpenAPIHono<ApiEnv, S>, _deps: ReportsRouteDeps) {
  return app;
}
