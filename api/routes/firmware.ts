import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { Schema } from "hono";
import {
  FirmwareCompareParams,
  FirmwareComparison,
  FirmwareListParams,
  FirmwareVersions,
} from "../../contract/api/fleet.js";
import { alignHours, DAY_MS, iso } from "../../contract/time.js";
import type { HealthService } from "../../services/health.js";
import { type ApiEnv, guarded } from "../auth.js";
import { ApiError, errorResponse, REFUSALS } from "../errors.js";
import { resolveAnalyticsWindow } from "../time-window.js";

const DEFAULT_FIRMWARE_SPAN_MS = 30 * DAY_MS;

const viewer = guarded("viewer");

export const listFirmwareRoute = createRoute({
  method: "get",
  path: "/api/v1/firmware",
  summary: "Firmware versions per model with first seen, devices now and daily adoption",
  ...viewer,
  request: { query: FirmwareListParams },
  responses: {
    200: {
      description: "Versions active in the window, oldest first",
      content: { "application/json": { schema: FirmwareVersions } },
    },
    ...REFUSALS,
  },
});

export const compareFirmwareRoute = createRoute({
  method: "get",
  path: "/api/v1/firmware/compare",
  summary: "Fault rates of two firmware cohorts of one model, with rate ratios, exact 95% CIs and verdicts",
  ...viewer,
  request: { query: FirmwareCompareParams },
  responses: {
    200: {
      description: "The comparison",
      content: { "application/json": { schema: FirmwareComparison } },
    },
    ...REFUSALS,
    404: errorResponse("A cohort has no exposure (no activity) in the window"),
  },
});

export function registerFirmware<S extends Schema>(
  app: OpenAPIHono<ApiEnv, S>,
  deps: { health: HealthService; now?: () => number },
) {
  const now = deps.now ?? Date.now;

  return app
    .openapi(listFirmwareRoute, async (c) => {
      const { from, to, model } = c.req.valid("query");
      const { fromMs, toMs } = resolveAnalyticsWindow({ from, to }, now(), DEFAULT_FIRMWARE_SPAN_MS);
      return c.json(await deps.health.firmwareVersions({ fromMs, toMs, ...(model ? { model } : {}) }), 200);
    })
    .openapi(compareFirmwareRoute, async (c) => {
      const { from, to, severity, ...cohorts } = c.req.valid("query");
      const { fromMs, toMs } = resolveAnalyticsWindow({ from, to }, now(), DEFAULT_FIRMWARE_SPAN_MS);
      const result = await deps.health.compareFirmware({
        ...cohorts,
        fromMs,
        toMs,
        ...(severity ? { severity } : {}),
      });
      if (result.ok) return c.json(result.value, 200);
      const window = alignHours({ fromMs, toMs });
      const which = result.error.cohorts.map((side) => `${side} "${cohorts[side]}"`).join(" and ");
      throw new ApiError({
        code: "NOT_FOUND",
        message: `${which} of model "${cohorts.model}" reported no activity between ${iso(window.fromMs)} and ${iso(window.toMs)}`,
      });
    });
}
