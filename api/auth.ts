import { timingSafeEqual } from "node:crypto";
import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { Role } from "../config/env.js";
import { ApiError } from "./errors.js";
import { asTokenBook, sha256, type TokenSource } from "./token-book.js";

/** name: who holds the token; digest: the valid token's SHA-256 in hex, the client's key for rate limits. */
export type Credentials =
  | { role: Role; name: string; digest: string }
  | { role: undefined; problem: "missing" | "invalid" };
export type ApiEnv = { Variables: { credentials: Credentials } };

const RANK: Record<Role, number> = { viewer: 1, operator: 2, admin: 3 };

/** The name of the security scheme in the OpenAPI document. */
export const BEARER = "bearer";

const INVALID: Credentials = { role: undefined, problem: "invalid" };

export type ResolveCredentials = (token: string | undefined) => Credentials;

/**
 * Resolves a presented token to its holder, comparing digests in constant time: the API's and the dashboard's.
 * The book is asked on every call, so a token added to or revoked from the tokens file counts from then on.
 */
export function credentialsOf(tokens: TokenSource): ResolveCredentials {
  const book = asTokenBook(tokens);
  return (token) => {
    if (token === undefined) return { role: undefined, problem: "missing" };
    const presented = sha256(token);
    let match: { role: Role; name: string } | undefined;
    // Every entry is compared, so the time taken says nothing about which one matched.
    for (const entry of book.entries()) {
      if (timingSafeEqual(entry.digest, presented)) match = { role: entry.role, name: entry.name };
    }
    return match !== undefined ? { ...match, digest: presented.toString("hex") } : INVALID;
  };
}

/**
 * Resolves the bearer token to a role without refusing anything; routes state the role they need with
 * requireRole.
 */
export function authenticate(tokens: TokenSource) {
  const resolve = credentialsOf(tokens);
  return createMiddleware<ApiEnv>(async (c, next) => {
    const header = c.req.header("authorization");
    const token = header === undefined ? undefined : /^Bearer +(\S+) *$/i.exec(header)?.[1];
    // A header that is not a bearer token is an invalid one, not a missing one.
    c.set("credentials", header !== undefined && token === undefined ? INVALID : resolve(token));
    await next();
  });
}

/** Who did it, for audit entries, notes and commands: the token holder's name ("ana"). */
export function actorOf(c: Context<ApiEnv>): string {
  const credentials = c.get("credentials");
  return credentials?.role === undefined ? "unknown" : credentials.name;
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
