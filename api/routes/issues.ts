import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { Context, Schema } from "hono";
import { applyEvent, requestTransition } from "../../analytics/lifecycle.js";
import { NoQuery } from "../../contract/api/common.js";
import {
  AssigneeBody,
  IssueChange,
  IssueDetail,
  IssueDetailQuery,
  IssueIdParam,
  IssueListQuery,
  IssuePage,
  MergeBody,
  NoteBody,
  TransitionBody,
} from "../../contract/api/issues.js";
import type { IssueEvent } from "../../contract/issue-events.js";
import { WEEK_MS } from "../../contract/time.js";
import type { Logger } from "../../observe/logger.js";
import type { IssueService, IssueStateView } from "../../services/issues.js";
import { type ApiEnv, actorOf, guarded } from "../auth.js";
import { ApiError, errorResponse, REFUSALS } from "../errors.js";
import { resolveAnalyticsWindow, windowedPage } from "../time-window.js";

const DEFAULT_SPAN_MS = WEEK_MS;

const unknown = { 404: errorResponse("No fault ever had this fingerprint") };

export const listIssuesRoute = createRoute({
  method: "get",
  path: "/api/v1/issues",
  summary: "Issues with an occurrence in the window, with their statistics",
  ...guarded("viewer"),
  request: { query: IssueListQuery },
  responses: {
    200: { description: "A page of issues", content: { "application/json": { schema: IssuePage } } },
    ...REFUSALS,
  },
});

export const getIssueRoute = createRoute({
  method: "get",
  path: "/api/v1/issues/{id}",
  summary: "One issue with breakdowns, trend, affected devices and history",
  description: "An issue merged into another answers with the issue it was merged into.",
  ...guarded("viewer"),
  request: { params: IssueIdParam, query: IssueDetailQuery },
  responses: {
    200: { description: "The issue", content: { "application/json": { schema: IssueDetail } } },
    ...REFUSALS,
    ...unknown,
  },
});

// The path a literal type, so the typed client (api/client.ts) tells the four routes and their bodies apart.
const change = <
  P extends string,
  B extends typeof TransitionBody | typeof AssigneeBody | typeof NoteBody | typeof MergeBody,
>(
  path: P,
  summary: string,
  body: B,
) =>
  createRoute({
    method: "post",
    path: `/api/v1/issues/{id}/${path}`,
    summary,
    ...guarded("operator"),
    request: {
      params: IssueIdParam,
      query: NoQuery,
      body: { content: { "application/json": { schema: body } }, required: true },
    },
    responses: {
      200: { description: "Recorded", content: { "application/json": { schema: IssueChange } } },
      ...REFUSALS,
      ...unknown,
      409: errorResponse(
        "The issue's state does not allow it (a merged issue, a move the lifecycle forbids)",
      ),
      413: errorResponse("The body is larger than FIELDQ_API_MAX_BODY_BYTES"),
    },
  });

export const transitionRoute = change(
  "transitions",
  "Move the issue through its lifecycle (analytics/lifecycle.ts TRANSITIONS)",
  TransitionBody,
);
export const assigneeRoute = change("assignee", "Assign the issue, or unassign it with null", AssigneeBody);
export const noteRoute = change("notes", "Add a note to the issue's history", NoteBody);
export const mergeRoute = change("merge", "Merge the issue into another one", MergeBody);

const notFound = (id: string) => new ApiError({ code: "NOT_FOUND", message: `no issue "${id}"` });
const badRequest = (message: string) => new ApiError({ code: "BAD_REQUEST", message });
/** The request is well formed but the issue's state does not allow it. */
const conflict = (message: string) => new ApiError({ code: "CONFLICT", message });
const STATE_CONFLICTS: ReadonlySet<string> = new Set(["INVALID_TRANSITION", "ISSUE_MERGED"]);

export type IssueRouteDeps = {
  issues: IssueService;
  logger: Logger;
  /** Clock for default windows and event times; tests pin it. */
  now?: () => number;
};

export function registerIssues<S extends Schema>(app: OpenAPIHono<ApiEnv, S>, deps: IssueRouteDeps) {
  const now = deps.now ?? Date.now;

  // Never before the latest event, or replaying the log would put the new one in the past.
  const at = (view: IssueStateView) => Math.max(now(), view.state.updatedAt ?? 0);

  async function current(id: string): Promise<IssueStateView> {
    const view = await deps.issues.state(id);
    if (view === undefined) throw notFound(id);
    return view;
  }

  const unmerged = (id: string, view: IssueStateView) => {
    if (view.state.mergedInto !== null) {
      throw conflict(`issue "${id}" was merged into ${view.state.mergedInto}; change that one`);
    }
  };

  async function record(c: Context<ApiEnv>, id: string, view: IssueStateView, event: IssueEvent) {
    await deps.issues.append(id, event);
    const state = applyEvent(view.state, event);
    deps.logger.info({ issue: id, type: event.type, actor: event.actor }, "issue %s: %s", id, event.type);
    const body: IssueChange = {
      issue: id,
      recorded: { issue: id, event },
      status: state.status,
      assignee: state.assignee,
      fixVersion: state.fixVersion,
      mergedInto: state.mergedInto,
    };
    return c.json(body, 200);
  }

  return app
    .openapi(listIssuesRoute, async (c) => {
      const query = c.req.valid("query");
      const { fromMs, toMs } = resolveAnalyticsWindow(query, now(), DEFAULT_SPAN_MS);
      const page = await deps.issues.list({
        fromMs,
        toMs,
        sort: query.sort,
        limit: query.limit,
        offset: query.offset,
        ...(query.kind === undefined ? {} : { kind: query.kind }),
        ...(query.model === undefined ? {} : { model: query.model }),
        ...(query.firmware === undefined ? {} : { firmware: query.firmware }),
        ...(query.status === undefined ? {} : { status: query.status }),
        ...(query.assignedTo === undefined ? {} : { assignee: query.assignedTo }),
        withTrend: query.withTrend,
        ...(query.severity === undefined ? {} : { severity: query.severity }),
      });
      return c.json(windowedPage(page, query, { fromMs, toMs }), 200);
    })
    .openapi(getIssueRoute, async (c) => {
      const { id } = c.req.valid("param");
      const query = c.req.valid("query");
      const window = resolveAnalyticsWindow(query, now(), DEFAULT_SPAN_MS);
      const issue = await deps.issues.detail(id, window, {
        limit: query.devicesLimit,
        offset: query.devicesOffset,
      });
      if (issue === undefined) throw notFound(id);
      return c.json(issue, 200);
    })
    .openapi(transitionRoute, async (c) => {
      const { id } = c.req.valid("param");
      const body = c.req.valid("json");
      const view = await current(id);
      const result = requestTransition(view.state, {
        to: body.to,
        actor: actorOf(c),
        at: at(view),
        reason: body.reason,
        fixVersion: body.fixVersion,
      });
      if (!result.ok) {
        const message = `${result.error.code}: ${result.error.message}`;
        throw STATE_CONFLICTS.has(result.error.code) ? conflict(message) : badRequest(message);
      }
      return record(c, id, view, result.value);
    })
    .openapi(assigneeRoute, async (c) => {
      const { id } = c.req.valid("param");
      const { assignee } = c.req.valid("json");
      const view = await current(id);
      unmerged(id, view);
      return record(c, id, view, { type: "assign", assignee, actor: actorOf(c), at: at(view) });
    })
    .openapi(noteRoute, async (c) => {
      const { id } = c.req.valid("param");
      const { text } = c.req.valid("json");
      const view = await current(id);
      unmerged(id, view);
      return record(c, id, view, { type: "note", text, actor: actorOf(c), at: at(view) });
    })
    .openapi(mergeRoute, async (c) => {
      const { id } = c.req.valid("param");
      const { into, reason } = c.req.valid("json");
      if (into === id) throw badRequest(`body field "into": an issue cannot be merged into itself`);
      const view = await current(id);
      unmerged(id, view);
      const target = await deps.issues.state(into);
      if (target === undefined) throw badRequest(`body field "into": no issue "${into}"`);
      if (target.resolvedId === id) {
        throw conflict(
          `body field "into": issue "${into}" is merged into "${id}"; merging back would make a cycle`,
        );
      }
      return record(c, id, view, {
        type: "merge",
        into,
        actor: actorOf(c),
        at: at(view),
        ...(reason === undefined ? {} : { reason }),
      });
    });
}
