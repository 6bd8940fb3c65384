import { createHash, timingSafeEqual } from "node:crypto";
import type { Context } from "hono";
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

const INVALID: Credentials = { role: undefined, problem: "invalid" };

/** Resolves a presented token to its role, comparing digests in constant time: the API's and the dashboard's. */
export function credentialsOf(tokens: ReadonlyMap<string, Role>) {
  const known = [...tokens].map(([token, role]) => ({ digest: digest(token), role }));
  return (token: string | undefined): Credentials => {
    let role: Role | undefined;
    const presented = token === undefined ? undefined : digest(token);
    // Every entry is compared, so the time taken says nothing about which one matched.
    if (presented !== undefined) {
      for (const entry of known) if (timingSafeEqual(entry.digest, presented)) role = entry.role;
    }
    return role !== undefined && presented !== undefined
      ? { role, digest: presented.toString("hex") }
      : { role: undefined, problem: token === undefined ? "missing" : "invalid" };
  };
}

/**
 * Resolves the bearer token to a role without refusing anything; routes state the role they need with
 * requireRole.
 */
export function authenticate(tokens: ReadonlyMap<string, Role>) {
  const resolve = credentialsOf(tokens);
  return createMiddleware<ApiEnv>(async (c, next) => {
    const header = c.req.header("authorization");
    const token = header === undefined ? undefined : /^Bearer +(\S+) *$/i.exec(header)?.[1];
    // A header that is not a bearer token is an invalid one, not a missing one.
    c.set("credentials", header !== undefined && token === undefined ? INVALID : resolve(token));
    await next();
  });
}

/**
 * Who did it, for audit entries, notes and commands: the auth layer knows only a role, so the actor is the
 * role plus the first 8 hex digits of the token's SHA-256, stable per token and useless for guessing it
 * ("operator:3f9a1c0b").
 */
export function actorOf(c: Context<ApiEnv>): string {
  const credentials = c.get("credentials");
  if (credentials?.role === undefined) return "unknown";
  return `${credentials.role}:${credentials.digest.slice(0, 8)}`;
}

/** Whether a request's role ranks at least minRole. */
export const ranksAtLeast = (role: Role, minRole: Role) => RANK[role] >= RANK[minRole];

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
    if (!ranksAtLeast(credentials.role, minRole)) {
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
