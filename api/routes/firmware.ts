import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { Schema } from "hono";
import {
  FirmwareCompareParams,
  FirmwareComparison,
  FirmwareListParams,
  FirmwareVersions,
} from "../../contract/api/fleet.js";
import { RegressionList, RegressionListParams } from "../../contract/api/regressions.js";
import { alignHours, DAY_MS, iso } from "../../contract/time.js";
import type { FirmwareService } from "../../services/firmware.js";
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
  summary:
    "Fault rates of two firmware cohorts of one model compared device by device: rate ratios, 95% CIs, verdicts and their evidence",
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

export const listRegressionsRoute = createRoute({
  method: "get",
  path: "/api/v1/firmware/regressions",
  summary:
    "Regressions (and improvements over a predecessor) found without asking, across models, with evidence and the hour first reached",
  ...viewer,
  request: { query: RegressionListParams },
  responses: {
    200: {
      description: "The verdicts that hold now, newest first",
      content: { "application/json": { schema: RegressionList } },
    },
    ...REFUSALS,
  },
});

export function registerFirmware<S extends Schema>(
  app: OpenAPIHono<ApiEnv, S>,
  deps: { health: HealthService; firmware: FirmwareService; now?: () => number },
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
      const result = await deps.firmware.compare({
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
    })
    .openapi(listRegressionsRoute, async (c) => {
      const { model, kind, verdict } = c.req.valid("query");
      return c.json(await deps.firmware.regressions({ model, kind, verdict }), 200);
    });
}
