import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { FaultListQuery, FaultPage } from "../../contract/api/faults.js";
import type { FleetStore } from "../../storage/fleet-store.js";
import { type ApiEnv, guarded } from "../auth.js";
import { REFUSALS } from "../errors.js";
import { resolveWindow, windowedPage } from "../time-window.js";

const DEFAULT_FAULT_SPAN_MS = 7 * 86_400_000;

export const listFaultsRoute = createRoute({
  method: "get",
  path: "/api/v1/faults",
  summary: "Faults newest first, filtered by time, device labels, code and severity",
  ...guarded("viewer"),
  request: { query: FaultListQuery },
  responses: {
    200: { description: "A page of faults", content: { "application/json": { schema: FaultPage } } },
    ...REFUSALS,
  },
});

export function registerFaults(app: OpenAPIHono<ApiEnv>, deps: { store: FleetStore; now?: () => number }) {
  const now = deps.now ?? Date.now;

  app.openapi(listFaultsRoute, async (c) => {
    const { from, to, ...filter } = c.req.valid("query");
    const { fromMs, toMs } = resolveWindow({ from, to }, now(), DEFAULT_FAULT_SPAN_MS);
    const page = await deps.store.listFaults({ ...filter, fromMs, toMs });
    return c.json(windowedPage(page, filter, { fromMs, toMs }), 200);
  });
}
