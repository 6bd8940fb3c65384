import type { Context, ErrorHandler, NotFoundHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { ZodError } from "zod";
import { type ErrorCode, ErrorEnvelope } from "../contract/api/common.js";
import type { Logger } from "../observe/logger.js";
import { StoreUnavailable } from "../storage/influxql.js";

export function codeToStatus(code: ErrorCode): ContentfulStatusCode {
  switch (code) {
    case "BAD_REQUEST":
      return 400;
    case "UNAUTHORIZED":
      return 401;
    case "FORBIDDEN":
      return 403;
    case "NOT_FOUND":
      return 404;
    case "CONFLICT":
      return 409;
    case "PAYLOAD_TOO_LARGE":
      return 413;
    case "UNSUPPORTED_MEDIA_TYPE":
      return 415;
    case "RATE_LIMITED":
      return 429;
    case "UNAVAILABLE":
      return 503;
    case "INTERNAL":
      return 500;
    default: {
      const unreachable: never = code;
      throw new Error(`unhandled error code ${String(unreachable)}`);
    }
  }
}

/** For Hono's own HTTPExceptions (malformed JSON, unsupported media type, …). */
function statusToCode(status: number): ErrorCode {
  if (status === 401) return "UNAUTHORIZED";
  if (status === 403) return "FORBIDDEN";
  if (status === 404) return "NOT_FOUND";
  if (status === 409) return "CONFLICT";
  if (status === 413) return "PAYLOAD_TOO_LARGE";
  if (status === 415) return "UNSUPPORTED_MEDIA_TYPE";
  if (status === 429) return "RATE_LIMITED";
  if (status === 503) return "UNAVAILABLE";
  if (status >= 400 && status < 500) return "BAD_REQUEST";
  return "INTERNAL";
}

export class ApiError extends HTTPException {
  readonly code: ErrorCode;
  readonly headers: Record<string, string>;

  constructor(options: {
    code: ErrorCode;
    message: string;
    cause?: unknown;
    headers?: Record<string, string>;
  }) {
    super(codeToStatus(options.code), { message: options.message, cause: options.cause });
    this.name = "ApiError";
    this.code = options.code;
    this.headers = options.headers ?? {};
  }
}

/** An error response for a route definition. */
export const errorResponse = (description: string) => ({
  description,
  content: { "application/json": { schema: ErrorEnvelope } },
});

/** Over the request rate: the envelope and when to try again. */
export const RATE_LIMITED_RESPONSE = {
  ...errorResponse("More requests than the token (or the address, without one) may make; try again later"),
  headers: {
    "Retry-After": {
      description: "Seconds until the next request is accepted",
      schema: { type: "integer" as const, minimum: 1 },
    },
  },
};

/** The refusals every guarded route can answer with. */
export const REFUSALS = {
  400: errorResponse("A parameter is not valid"),
  401: errorResponse("No valid bearer token"),
  403: errorResponse("The token's role is too low"),
  429: RATE_LIMITED_RESPONSE,
};

const envelope = (code: ErrorCode, message: string): ErrorEnvelope => ({ error: { code, message } });

/** Ours as they are, Hono's mapped to our codes, anything else a 500 without details. */
export function handleError(logger: Logger): ErrorHandler {
  return (error, c) => {
    if (error instanceof ApiError) {
      return c.json(envelope(error.code, error.message), error.status, error.headers);
    }
    if (error instanceof StoreUnavailable) {
      logger.warn({ err: error.cause }, "InfluxDB unreachable while answering %s", c.req.path);
      return c.json(envelope("UNAVAILABLE", "the database is not reachable, try again later"), 503);
    }
    if (error instanceof HTTPException) {
      const code = statusToCode(error.status);
      if (code === "INTERNAL")
        logger.error({ err: error }, "HTTP exception on %s %s", c.req.method, c.req.path);
      const status = error.status >= 400 ? (error.status as ContentfulStatusCode) : 500;
      return c.json(envelope(code, error.message || "request failed"), status);
    }
    logger.error({ err: error }, "unhandled error on %s %s", c.req.method, c.req.path);
    return c.json(envelope("INTERNAL", "internal error"), 500);
  };
}

export const handleNotFound: NotFoundHandler = (c) =>
  c.json(envelope("NOT_FOUND", `no route for ${c.req.method} ${c.req.path}`), 404);

const TARGETS: Record<string, string> = {
  query: "query parameter",
  param: "path parameter",
  json: "body field",
  form: "form field",
  header: "header",
  cookie: "cookie",
};

/** `query parameter "limit": Too big: expected number to be <=1000; query parameter "metric": is required` */
export function describeIssues(target: string, error: ZodError, given: Record<string, unknown> = {}): string {
  const where = TARGETS[target] ?? target;
  return error.issues
    .map((issue) => {
      const path = issue.path.map(String).join(".");
      if (issue.code === "unrecognized_keys") {
        const names = issue.keys.map((k) => `"${[...issue.path.map(String), k].join(".")}"`).join(", ");
        return `unknown ${where}${issue.keys.length === 1 ? "" : "s"} ${names}: this route does not take ${issue.keys.length === 1 ? "it" : "them"}`;
      }
      if (path === "") return `${where}s: ${issue.message}`;
      const absent = issue.code === "invalid_type" && issue.path.length === 1 && given[path] === undefined;
      return `${where} "${path}": ${absent ? "is required" : issue.message}`;
    })
    .join("; ");
}

/** The OpenAPIHono defaultHook: a failed validation becomes a BAD_REQUEST envelope. */
export function validationHook(
  result: { target: string } & ({ success: true } | { success: false; error: ZodError }),
  c: Context,
) {
  if (result.success) return;
  const given = result.target === "query" ? c.req.query() : result.target === "param" ? c.req.param() : {};
  throw new ApiError({ code: "BAD_REQUEST", message: describeIssues(result.target, result.error, given) });
}
