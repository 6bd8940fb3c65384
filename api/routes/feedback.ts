import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Schema } from "hono";
import type { FeedbackService } from "../../services/feedback.js";
import type { ApiEnv } from "../auth.js";

// STUB: being built (issue 13).

export type FeedbackRouteDeps = { feedback: FeedbackService; now?: () => number };

export function registerFeedback<S extends Schema>(app: OpenAPIHono<ApiEnv, S>, _deps: FeedbackRouteDeps) {
  return app;
}
