import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { Schema } from "hono";
import {
  AcknowledgeAnswer,
  AcknowledgeBody,
  AlertDetail,
  AlertIdParam,
  AlertListQuery,
  AlertPage,
} from "../../contract/api/alerts.js";
import { NoQuery } from "../../contract/api/common.js";
import type { AlertService } from "../../services/alerts.js";
import { type ApiEnv, actorOf, guarded } from "../auth.js";
import { ApiError, errorResponse, REFUSALS } from "../errors.js";

// Alerts with the delivery of their latest notice per target (docs/alerts.md), and acknowledging one.

const unknown = { 404: errorResponse("No alert has this id") };

export const listAlertsRoute = createRoute({
  method: "get",
  path: "/api/v1/alerts",
  summary: "Alerts, newest first, with their status, level, acknowledgement and delivery per target",
  ...guarded("viewer"),
  request: { query: AlertListQuery },
  responses: {
    200: { description: "A page of alerts", content: { "application/json": { schema: AlertPage } } },
    ...REFUSALS,
  },
});

export const getAlertRoute = createRoute({
  method: "get",
  path: "/api/v1/alerts/{id}",
  summary: "One alert with its whole history: notices, delivery attempts, acknowledgements",
  ...guarded("viewer"),
  request: { params: AlertIdParam, query: NoQuery },
  responses: {
    200: { description: "The alert", content: { "application/json": { schema: AlertDetail } } },
    ...REFUSALS,
    ...unknown,
  },
});

export const acknowledgeAlertRoute = createRoute({
  method: "post",
  path: "/api/v1/alerts/{id}/acknowledge",
  summary: "Acknowledge an alert: it stops repeating and escalating",
  ...guarded("operator"),
  request: {
    params: AlertIdParam,
    query: NoQuery,
    body: { content: { "application/json": { schema: AcknowledgeBody } }, required: false },
  },
  responses: {
    200: {
      description: "Recorded",
      content: { "application/json": { schema: AcknowledgeAnswer } },
    },
    ...REFUSALS,
    ...unknown,
    409: errorResponse("The alert is resolved"),
    413: errorResponse("The body is larger than FIELDQ_API_MAX_BODY_BYTES"),
  },
});

export type AlertsRouteDeps = { alerts: AlertService; now?: () => number };

const notFound = (id: string) => new ApiError({ code: "NOT_FOUND", message: `no alert "${id}"` });

export function registerAlerts<S extends Schema>(app: OpenAPIHono<ApiEnv, S>, deps: AlertsRouteDeps) {
  return app
    .openapi(listAlertsRoute, async (c) => {
      const query = c.req.valid("query");
      const page = await deps.alerts.list({
        status: query.status,
        severity: query.severity,
        rule: query.rule,
        limit: query.limit,
        offset: query.offset,
      });
      return c.json(page, 200);
    })
    .openapi(getAlertRoute, async (c) => {
      const { id } = c.req.valid("param");
      const alert = await deps.alerts.get(id);
      if (alert === undefined) throw notFound(id);
      return c.json(alert, 200);
    })
    .openapi(acknowledgeAlertRoute, async (c) => {
      const { id } = c.req.valid("param");
      const body = c.req.valid("json") ?? {};
      const result = await deps.alerts.acknowledge(id, actorOf(c), body.note ?? null);
      if (!result.ok) {
        if (result.error === "NOT_FOUND") throw notFound(id);
        throw new ApiError({
          code: "CONFLICT",
          message: `alert "${id}" is resolved; there is nothing to acknowledge`,
        });
      }
      return c.json({ alert: result.value }, 200);
    });
}
