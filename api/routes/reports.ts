import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { Schema } from "hono";
import { ReviewQuery, ReviewReport } from "../../contract/api/reports.js";
import { DAY_MS } from "../../contract/time.js";
import type { ReviewService } from "../../services/review.js";
import { type ApiEnv, guarded } from "../auth.js";
import { REFUSALS } from "../errors.js";
import { reviewCsv } from "../review-csv.js";
import { reviewHtml } from "../review-html.js";
import { resolveAnalyticsWindow } from "../time-window.js";

const DEFAULT_SPAN_MS = 30 * DAY_MS;

export const reviewRoute = createRoute({
  method: "get",
  path: "/api/v1/reports/review",
  summary: "The management review (ISO 9001 §9.3) for a window: printable HTML, a table's CSV, or the data",
  description:
    "format=html (default): one self-contained printable document; format=csv&table=<name>: one table (RFC 4180, " +
    "cells a spreadsheet would run as formulas prefixed with an apostrophe); format=json: the data.",
  ...guarded("viewer"),
  request: { query: ReviewQuery },
  responses: {
    200: {
      description: "The review",
      content: {
        "application/json": { schema: ReviewReport },
        "text/html": { schema: { type: "string" } },
        "text/csv": { schema: { type: "string" } },
      },
    },
    ...REFUSALS,
  },
});

export type ReportsRouteDeps = { review: ReviewService; now?: () => number };

const day = (iso: string) => iso.slice(0, 10);

export function registerReports<S extends Schema>(app: OpenAPIHono<ApiEnv, S>, deps: ReportsRouteDeps) {
  const now = deps.now ?? Date.now;
  return app.openapi(reviewRoute, async (c) => {
    const query = c.req.valid("query");
    const window = resolveAnalyticsWindow(query, now(), DEFAULT_SPAN_MS);
    const report = await deps.review.report(window);
    const name = `fieldq-review-${day(report.from)}-${day(report.to)}`;
    if (query.format === "json") return c.json(report, 200);
    if (query.format === "csv" && query.table !== undefined) {
      return c.body(reviewCsv(report, query.table), 200, {
        "content-type": "text/csv; charset=utf-8; header=present",
        "content-disposition": `attachment; filename="${name}-${query.table}.csv"`,
      });
    }
    const csvHref = (table: string) => {
      const params = new URLSearchParams({ from: report.from, to: report.to, format: "csv", table });
      return `?${params}`;
    };
    return c.html(reviewHtml(report, { csvHref }), 200, {
      "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
    });
  });
}
