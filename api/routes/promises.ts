import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Schema } from "hono";
import type { PromiseService } from "../../services/promises.js";
import type { ApiEnv } from "../auth.js";

// STUB: being built (issue 13).

export type PromisesRouteDeps = { promises: PromiseService; now?: () => number };

export function registerPromises<S extends Schema>(app: OpenAPIHono<ApiEnv, S>, _deps: PromisesRouteDeps) {
  return app;
}
