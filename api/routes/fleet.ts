import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { Schema } from "hono";
import {
  CohortRanking,
  CohortRankingParams,
  FleetSummary,
  FleetSummaryParams,
  FleetTrend,
  FleetTrendParams,
  type GroupTag,
} from "../../contract/api/fleet.js";
import { alignHours, DAY_MS, iso } from "../../contract/time.js";
import type { HealthService } from "../../services/health.js";
import { type ApiEnv, guarded } from "../auth.js";
import { ApiError, errorResponse, REFUSALS } from "../errors.js";
import { resolveAnalyticsWindow } from "../time-window.js";

const DEFAULT_FLEET_SPAN_MS = 7 * DAY_MS;
const DEFAULT_COHORT_SPAN_MS = 30 * DAY_MS;

const viewer = guarded("viewer");

export const fleetSummaryRoute = createRoute({
  method: "get",
  path: "/api/v1/fleet/summary",
  summary: "Fleet health KPIs per group and for the whole selection, with their sample sizes",
  ...viewer,
  request: { query: FleetSummaryParams },
  responses: {
    200: { description: "The KPIs", content: { "application/json": { schema: FleetSummary } } },
    ...REFUSALS,
  },
});

export const fleetTrendRoute = createRoute({
  method: "get",
  path: "/api/v1/fleet/trend",
  summary: "Fleet health KPIs of the selection per UTC day",
  ...viewer,
  request: { query: FleetTrendParams },
  responses: {
    200: { description: "One entry per UTC day", content: { "application/json": { schema: FleetTrend } } },
    ...REFUSALS,
  },
});

export const fleetCohortsRoute = createRoute({
  method: "get",
  path: "/api/v1/fleet/cohorts",
  summary:
    "Which cohort of a model is worst: each ISP, region, hardware revision or firmware against the rest of the model",
  description:
    "Fault rates compared device by device (analytics/device-rates.ts), overall and per code; every comparison of the answer judged together (Holm)",
  ...viewer,
  request: { query: CohortRankingParams },
  responses: {
    200: {
      description: "The model's cohorts, worst first",
      content: { "application/json": { schema: CohortRanking } },
    },
    ...REFUSALS,
    404: errorResponse("No device of the model has exposure (activity) in the window"),
  },
});

export function registerFleet<S extends Schema>(
  app: OpenAPIHono<ApiEnv, S>,
  deps: { health: HealthService; now?: () => number },
) {
  const now = deps.now ?? Date.now;

  return app
    .openapi(fleetSummaryRoute, async (c) => {
      const { from, to, groupBy, ...selection } = c.req.valid("query");
      const { fromMs, toMs } = resolveAnalyticsWindow({ from, to }, now(), DEFAULT_FLEET_SPAN_MS);
      const tags = [...new Set(groupBy.split(","))] as GroupTag[];
      return c.json(await deps.health.fleetSummary({ ...selection, groupBy: tags, fromMs, toMs }), 200);
    })
    .openapi(fleetTrendRoute, async (c) => {
      const { from, to, ...selection } = c.req.valid("query");
      const { fromMs, toMs } = resolveAnalyticsWindow({ from, to }, now(), DEFAULT_FLEET_SPAN_MS);
      return c.json(await deps.health.fleetTrend({ ...selection, fromMs, toMs }), 200);
    })
    .openapi(fleetCohortsRoute, async (c) => {
      const { from, to, ...query } = c.req.valid("query");
      const { fromMs, toMs } = resolveAnalyticsWindow({ from, to }, now(), DEFAULT_COHORT_SPAN_MS);
      const result = await deps.health.rankCohorts({ ...query, fromMs, toMs });
      if (result.ok) return c.json(result.value, 200);
      const window = alignHours({ fromMs, toMs });
      throw new ApiError({
        code: "NOT_FOUND",
        message: `no device${query.model === undefined ? "" : ` of model "${query.model}"`}${query.kind === undefined ? "" : ` of kind "${query.kind}"`} reported activity between ${iso(window.fromMs)} and ${iso(window.toMs)}`,
      });
    });
}
