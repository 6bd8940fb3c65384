import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { Schema } from "hono";
import { PromisesAnswer, PromisesQuery } from "../../contract/api/promises.js";
import { DAY_MS } from "../../contract/time.js";
import type { PromiseService } from "../../services/promises.js";
import { type ApiEnv, guarded } from "../auth.js";
import { REFUSALS } from "../errors.js";
import { resolveAnalyticsWindow } from "../time-window.js";

const DEFAULT_SPAN_MS = 30 * DAY_MS;

export const listPromisesRoute = createRoute({
  method: "get",
  path: "/api/v1/promises",
  summary: "Each model's service promises: daily compliance, error budget, burn rate and status",
  description:
    "Judged per UTC day (docs/promises.md); budget, burn rate and status as of the earlier of `to` and now. Without a promises file the answer lists nothing and says how to add one.",
  ...guarded("viewer"),
  request: { query: PromisesQuery },
  responses: {
    200: {
      description: "The promises",
      content: { "application/json": { schema: PromisesAnswer } },
    },
    ...REFUSALS,
  },
});

export type PromisesRouteDeps = { promises: PromiseService; now?: () => number };

export function registerPromises<S extends Schema>(app: OpenAPIHono<ApiEnv, S>, deps: PromisesRouteDeps) {
  const now = deps.now ?? Date.now;
  return app.openapi(listPromisesRoute, async (c) => {
    const query = c.req.valid("query");
    const window = resolveAnalyticsWindow(query, now(), DEFAULT_SPAN_MS);
    const answer = await deps.promises.report({
      ...window,
      ...(query.model === undefined ? {} : { model: query.model }),
    });
    return c.json(answer, 200);
  });
}
