import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { Schema } from "hono";
import { FaultListQuery, FaultPage } from "../../contract/api/faults.js";
import { WEEK_MS } from "../../contract/time.js";
import type { FaultService } from "../../services/faults.js";
import { type ApiEnv, guarded } from "../auth.js";
import { ApiError, errorResponse, REFUSALS } from "../errors.js";
import { resolveWindow, windowedPage } from "../time-window.js";

const DEFAULT_FAULT_SPAN_MS = WEEK_MS;

export const listFaultsRoute = createRoute({
  method: "get",
  path: "/api/v1/faults",
  summary: "Faults newest first, filtered by time, device labels, code and severity",
  ...guarded("viewer"),
  request: { query: FaultListQuery },
  responses: {
    200: { description: "A page of faults", content: { "application/json": { schema: FaultPage } } },
    ...REFUSALS,
    404: errorResponse("`device` names a device that never sent anything"),
  },
});

export function registerFaults<S extends Schema>(
  app: OpenAPIHono<ApiEnv, S>,
  deps: { faults: FaultService; now?: () => number },
) {
  const now = deps.now ?? Date.now;

  return app.openapi(listFaultsRoute, async (c) => {
    const { from, to, ...filter } = c.req.valid("query");
    const { fromMs, toMs } = resolveWindow({ from, to }, now(), DEFAULT_FAULT_SPAN_MS);
    const page = await deps.faults.listFaults({ ...filter, fromMs, toMs });
    if (!page.ok) throw new ApiError({ code: "NOT_FOUND", message: `no device "${filter.device}"` });
    return c.json(windowedPage(page.value, filter, { fromMs, toMs }), 200);
  });
}
