import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { Schema } from "hono";
import { NoQuery } from "../../contract/api/common.js";
import {
  FeedbackBody,
  FeedbackListQuery,
  FeedbackPage,
  FeedbackRecord,
  FeedbackSummary,
  FeedbackSummaryQuery,
} from "../../contract/api/feedback.js";
import { DAY_MS } from "../../contract/time.js";
import type { FeedbackService } from "../../services/feedback.js";
import { type ApiEnv, actorOf, guarded } from "../auth.js";
import { ApiError, errorResponse, REFUSALS } from "../errors.js";
import { resolveAnalyticsWindow, resolveWindow, windowedPage } from "../time-window.js";

const DEFAULT_SPAN_MS = 30 * DAY_MS;

export const postFeedbackRoute = createRoute({
  method: "post",
  path: "/api/v1/feedback",
  summary: "Record what a customer told the support desk about a device",
  ...guarded("operator"),
  request: {
    query: NoQuery,
    body: { content: { "application/json": { schema: FeedbackBody } }, required: true },
  },
  responses: {
    201: { description: "Recorded", content: { "application/json": { schema: FeedbackRecord } } },
    ...REFUSALS,
    404: errorResponse("No device with this id"),
    413: errorResponse("The body is larger than FIELDQ_API_MAX_BODY_BYTES"),
  },
});

export const listFeedbackRoute = createRoute({
  method: "get",
  path: "/api/v1/feedback",
  summary: "Feedback the support desk recorded in the window, newest first",
  ...guarded("viewer"),
  request: { query: FeedbackListQuery },
  responses: {
    200: { description: "A page of feedback", content: { "application/json": { schema: FeedbackPage } } },
    ...REFUSALS,
  },
});

export const feedbackSummaryRoute = createRoute({
  method: "get",
  path: "/api/v1/feedback/summary",
  summary: "Per model and firmware: feedback by category and rating beside fault rates and device ratings",
  ...guarded("viewer"),
  request: { query: FeedbackSummaryQuery },
  responses: {
    200: { description: "The summary", content: { "application/json": { schema: FeedbackSummary } } },
    ...REFUSALS,
  },
});

export type FeedbackRouteDeps = { feedback: FeedbackService; now?: () => number };

export function registerFeedback<S extends Schema>(app: OpenAPIHono<ApiEnv, S>, deps: FeedbackRouteDeps) {
  const now = deps.now ?? Date.now;
  return app
    .openapi(postFeedbackRoute, async (c) => {
      const body = c.req.valid("json");
      const recorded = await deps.feedback.record(body, actorOf(c), now());
      if (!recorded.ok) throw new ApiError({ code: "NOT_FOUND", message: `no device "${body.device}"` });
      return c.json(recorded.value, 201);
    })
    .openapi(listFeedbackRoute, async (c) => {
      const query = c.req.valid("query");
      const window = resolveWindow(query, now(), DEFAULT_SPAN_MS);
      const page = await deps.feedback.list({
        ...window,
        device: query.device,
        model: query.model,
        firmware: query.firmware,
        category: query.category,
        limit: query.limit,
        offset: query.offset,
      });
      return c.json(windowedPage(page, query, window), 200);
    })
    .openapi(feedbackSummaryRoute, async (c) => {
      const query = c.req.valid("query");
      const window = resolveAnalyticsWindow(query, now(), DEFAULT_SPAN_MS);
      return c.json(await deps.feedback.summary({ ...window, model: query.model }), 200);
    });
}
