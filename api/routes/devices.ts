import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { Schema } from "hono";
import { NoQuery } from "../../contract/api/common.js";
import {
  DeviceDetail,
  DeviceIdParam,
  DeviceListQuery,
  DevicePage,
  DeviceSummaryResponse,
  PresencePage,
  PresenceQueryParams,
  SilenceQueryParams,
  SilenceReport,
  TelemetryQueryParams,
  TelemetrySeries,
} from "../../contract/api/devices.js";
import { HOUR_MS, WEEK_MS } from "../../contract/time.js";
import type { DeviceService } from "../../services/devices.js";
import { type ApiEnv, guarded } from "../auth.js";
import { ApiError, errorResponse, REFUSALS } from "../errors.js";
import { resolveEvery, resolveWindow, windowedPage } from "../time-window.js";

const DEFAULT_TELEMETRY_SPAN_MS = 6 * HOUR_MS;
const DEFAULT_PRESENCE_SPAN_MS = WEEK_MS;
const DEFAULT_SILENCE_SPAN_MS = WEEK_MS;

const viewer = guarded("viewer");

export const listDevicesRoute = createRoute({
  method: "get",
  path: "/api/v1/devices",
  summary:
    "Devices sorted by id, filtered by their latest hello and status, found by exact serial or free text over id, serial and model",
  ...viewer,
  request: { query: DeviceListQuery },
  responses: {
    200: { description: "A page of devices", content: { "application/json": { schema: DevicePage } } },
    ...REFUSALS,
  },
});

export const getDeviceRoute = createRoute({
  method: "get",
  path: "/api/v1/devices/{id}",
  summary: "One device with its recent faults",
  ...viewer,
  request: { params: DeviceIdParam, query: NoQuery },
  responses: {
    200: { description: "The device", content: { "application/json": { schema: DeviceDetail } } },
    ...REFUSALS,
    404: errorResponse("The device never sent anything"),
  },
});

export const telemetryRoute = createRoute({
  method: "get",
  path: "/api/v1/devices/{id}/telemetry",
  summary: "One metric of one device, aggregated per time bucket by InfluxDB",
  ...viewer,
  request: { params: DeviceIdParam, query: TelemetryQueryParams },
  responses: {
    200: { description: "The series", content: { "application/json": { schema: TelemetrySeries } } },
    ...REFUSALS,
    404: errorResponse("The device never sent anything"),
  },
});

export const presenceRoute = createRoute({
  method: "get",
  path: "/api/v1/devices/{id}/presence",
  summary: "Connects, disconnects, status messages and last wills of one device, newest first",
  ...viewer,
  request: { params: DeviceIdParam, query: PresenceQueryParams },
  responses: {
    200: {
      description: "A page of presence changes",
      content: { "application/json": { schema: PresencePage } },
    },
    ...REFUSALS,
    404: errorResponse("The device never sent anything"),
  },
});

export const summaryRoute = createRoute({
  method: "get",
  path: "/api/v1/devices/{id}/summary",
  summary:
    "Everything support needs about one device: status, presence, latest metrics, faults, events, ratings, issues",
  ...viewer,
  request: { params: DeviceIdParam, query: NoQuery },
  responses: {
    200: { description: "The summary", content: { "application/json": { schema: DeviceSummaryResponse } } },
    ...REFUSALS,
    404: errorResponse("The device never sent anything"),
  },
});

// Not under /devices/: "silent-rates" is a valid device id.
export const silenceRoute = createRoute({
  method: "get",
  path: "/api/v1/silence",
  summary:
    "Silent rates per model and firmware, and devices that went silent within 24 h of a firmware update",
  ...viewer,
  request: { query: SilenceQueryParams },
  responses: {
    200: { description: "The report", content: { "application/json": { schema: SilenceReport } } },
    ...REFUSALS,
  },
});

const unknownDevice = (id: string) => new ApiError({ code: "NOT_FOUND", message: `no device "${id}"` });

export type DevicesDeps = { devices: DeviceService; now?: () => number };

export function registerDevices<S extends Schema>(app: OpenAPIHono<ApiEnv, S>, deps: DevicesDeps) {
  const now = deps.now ?? Date.now;
  const { devices } = deps;

  return app
    .openapi(presenceRoute, async (c) => {
      const { id } = c.req.valid("param");
      const query = c.req.valid("query");
      const { fromMs, toMs } = resolveWindow(query, now(), DEFAULT_PRESENCE_SPAN_MS);
      const page = await devices.presenceHistory({
        device: id,
        fromMs,
        toMs,
        limit: query.limit,
        offset: query.offset,
      });
      if (page === undefined) throw unknownDevice(id);
      return c.json(windowedPage(page, query, { fromMs, toMs }), 200);
    })
    .openapi(summaryRoute, async (c) => {
      const { id } = c.req.valid("param");
      const summary = await devices.deviceSummary(id);
      if (summary === undefined) throw unknownDevice(id);
      return c.json(summary, 200);
    })
    .openapi(silenceRoute, async (c) => {
      const { fromMs, toMs } = resolveWindow(c.req.valid("query"), now(), DEFAULT_SILENCE_SPAN_MS);
      return c.json(await devices.silence({ fromMs, toMs }), 200);
    })
    .openapi(listDevicesRoute, async (c) => {
      const query = c.req.valid("query");
      const page = await devices.listDevices(query);
      return c.json({ ...page, limit: query.limit, offset: query.offset }, 200);
    })
    .openapi(getDeviceRoute, async (c) => {
      const { id } = c.req.valid("param");
      const device = await devices.getDevice(id);
      if (device === undefined) throw unknownDevice(id);
      return c.json(device, 200);
    })
    .openapi(telemetryRoute, async (c) => {
      const { id } = c.req.valid("param");
      const query = c.req.valid("query");
      const { fromMs, toMs } = resolveWindow(query, now(), DEFAULT_TELEMETRY_SPAN_MS);
      const everyMs = resolveEvery(query.every, toMs - fromMs);
      const result = await devices.telemetry({
        device: id,
        metric: query.metric,
        fn: query.fn,
        fromMs,
        toMs,
        everyMs,
      });
      if (result.ok) return c.json(result.value, 200);
      switch (result.error) {
        case "unknown_device":
          throw unknownDevice(id);
        case "not_numeric":
          throw new ApiError({
            code: "BAD_REQUEST",
            message: `metric "${query.metric}" is not a number: only fn=last applies to it`,
          });
      }
    });
}
