import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { DeviceDetail, type FleetStore, TelemetrySeries } from "../../storage/fleet-store.js";
import { type ApiEnv, BEARER, requireRole } from "../auth.js";
import { ApiError, errorResponse } from "../errors.js";
import { DeviceIdParam, DeviceListQuery, DevicePage, TelemetryQueryParams } from "../schemas.js";
import { resolveEvery, resolveWindow } from "../time-window.js";

const DEFAULT_TELEMETRY_SPAN_MS = 6 * 3_600_000;

const viewer = {
  security: [{ [BEARER]: [] }],
  middleware: [requireRole("viewer")],
};
const refusals = {
  400: errorResponse("A query parameter is not valid"),
  401: errorResponse("No valid bearer token"),
  403: errorResponse("The token's role is too low"),
};

export const listDevicesRoute = createRoute({
  method: "get",
  path: "/api/v1/devices",
  summary: "Devices sorted by id, filtered by their latest hello",
  ...viewer,
  request: { query: DeviceListQuery },
  responses: {
    200: { description: "A page of devices", content: { "application/json": { schema: DevicePage } } },
    ...refusals,
  },
});

export const getDeviceRoute = createRoute({
  method: "get",
  path: "/api/v1/devices/{id}",
  summary: "One device with its recent faults",
  ...viewer,
  request: { params: DeviceIdParam },
  responses: {
    200: { description: "The device", content: { "application/json": { schema: DeviceDetail } } },
    ...refusals,
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
    ...refusals,
    404: errorResponse("The device never sent anything"),
  },
});

const unknownDevice = (id: string) => new ApiError({ code: "NOT_FOUND", message: `no device "${id}"` });

export function registerDevices(app: OpenAPIHono<ApiEnv>, deps: { store: FleetStore; now?: () => number }) {
  const now = deps.now ?? Date.now;

  app.openapi(listDevicesRoute, async (c) => {
    const query = c.req.valid("query");
    const page = await deps.store.listDevices(query);
    return c.json({ ...page, limit: query.limit, offset: query.offset }, 200);
  });

  app.openapi(getDeviceRoute, async (c) => {
    const { id } = c.req.valid("param");
    const device = await deps.store.getDevice(id);
    if (device === undefined) throw unknownDevice(id);
    return c.json(device, 200);
  });

  app.openapi(telemetryRoute, async (c) => {
    const { id } = c.req.valid("param");
    const query = c.req.valid("query");
    const { fromMs, toMs } = resolveWindow(query, now(), DEFAULT_TELEMETRY_SPAN_MS);
    const everyMs = resolveEvery(query.every, toMs - fromMs);
    const result = await deps.store.telemetry({
      device: id,
      metric: query.metric,
      fn: query.fn,
      fromMs,
      toMs,
      everyMs,
    });
    if (result.ok) return c.json(result.series, 200);
    switch (result.reason) {
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
