import { createHash, timingSafeEqual } from "node:crypto";
import { createMiddleware } from "hono/factory";
import type { Role } from "../config/env.js";
import { ApiError } from "./errors.js";

/** digest: the valid token's SHA-256 in hex, the client's name for rate limits and actors. */
export type Credentials =
  | { role: Role; digest: string }
  | { role: undefined; problem: "missing" | "invalid" };
export type ApiEnv = { Variables: { credentials: Credentials } };

const RANK: Record<Role, number> = { viewer: 1, operator: 2, admin: 3 };

/** The name of the security scheme in the OpenAPI document. */
export const BEARER = "bearer";

const digest = (token: string) => createHash("sha256").update(token).digest();

/**
 * Resolves the bearer token to a role without refusing anything; routes state the role they need with
 * requireRole. Tokens are compared as equal-length digests in constant time.
 */
export function authenticate(tokens: ReadonlyMap<string, Role>) {
  const known = [...tokens].map(([token, role]) => ({ digest: digest(token), role }));
  return createMiddleware<ApiEnv>(async (c, next) => {
    const header = c.req.header("authorization");
    const token = header === undefined ? undefined : /^Bearer +(\S+) *$/i.exec(header)?.[1];
    let role: Role | undefined;
    const presented = token === undefined ? undefined : digest(token);
    // Every entry is compared, so the time taken says nothing about which one matched.
    if (presented !== undefined) {
      for (const entry of known) if (timingSafeEqual(entry.digest, presented)) role = entry.role;
    }
    c.set(
      "credentials",
      role !== undefined && presented !== undefined
        ? { role, digest: presented.toString("hex") }
        : { role: undefined, problem: header === undefined ? "missing" : "invalid" },
    );
    await next();
  });
}

/** 401 without a valid token (RFC 6750 §3), 403 when the token's role ranks below minRole. */
export function requireRole(minRole: Role) {
  return createMiddleware<ApiEnv>(async (c, next) => {
    const credentials = c.get("credentials") ?? { role: undefined, problem: "missing" };
    if (credentials.role === undefined) {
      const missing = credentials.problem === "missing";
      throw new ApiError({
        code: "UNAUTHORIZED",
        message: missing ? "a bearer token is required" : "the bearer token is not valid",
        headers: {
          "WWW-Authenticate": missing
            ? 'Bearer realm="fieldq"'
            : 'Bearer realm="fieldq", error="invalid_token"',
        },
      });
    }
    if (RANK[credentials.role] < RANK[minRole]) {
      throw new ApiError({
        code: "FORBIDDEN",
        message: `this needs the ${minRole} role; the token has ${credentials.role}`,
      });
    }
    await next();
  });
}

/** What a route declares to need a token of at least this role, for the OpenAPI document and at runtime. */
export const guarded = (role: Role) => ({
  security: [{ [BEARER]: [] }],
  middleware: [requireRole(role)],
});
