import type { Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { createMiddleware } from "hono/factory";
import type { AppType } from "../api/app.js";
import { type Credentials, type ResolveCredentials, ranksAtLeast } from "../api/auth.js";
import { type ApiClient, createInProcessClient } from "../api/client.js";
import type { Role } from "../config/env.js";

// Who is signed in to the dashboard. The sign-in form posts the token once; it is kept in an HttpOnly cookie
// (never in a URL, never readable by the page's scripts) and forgotten at sign-out. Every page resolves it with
// the API's own token check and reads the API in-process with it as the bearer token, so the dashboard can
// show and do exactly what the API lets that token do, and the API refuses the rest anyway.

export const SESSION_COOKIE = "fieldq_session";

export type Session = {
  role: Role;
  /** Who holds the token ("ana"), as the audit trail names them. */
  name: string;
  /** The token's digest: the client's key for rate limits. */
  digest: string;
  /** The API, called in this process with the session's token. */
  api: ApiClient;
  /** Whether this role may act (acknowledge, assign, note): operator and above. */
  canAct: boolean;
};

export type DashboardEnv = {
  Variables: { credentials: Credentials; session: Session };
};

/** A live refresh (client/live.ts) asks with this header: it gets 401 instead of a redirect to sign in. */
export const LIVE_HEADER = "x-fieldq-live";

/** Only a path of this site: never an absolute URL or a scheme-relative one (`//evil`). */
export function safeNext(next: string | undefined): string {
  if (next === undefined || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/\\"))
    return "/";
  return next;
}

const isHttps = (c: Context) => new URL(c.req.url).protocol === "https:";

/** Keeps the token for this browser session: HttpOnly, SameSite=Lax (a pasted link still opens signed in). */
export function rememberToken(c: Context, token: string): void {
  setCookie(c, SESSION_COOKIE, token, { httpOnly: true, sameSite: "Lax", path: "/", secure: isHttps(c) });
}

export function forgetToken(c: Context): void {
  deleteCookie(c, SESSION_COOKIE, { path: "/", secure: isHttps(c) });
}

/**
 * Resolves the session cookie for every dashboard request (credentials for the rate limit, the session for the
 * page); refuses nothing.
 */
export function resolveSession(app: AppType, resolve: ResolveCredentials) {
  return createMiddleware<DashboardEnv>(async (c, next) => {
    const token = getCookie(c, SESSION_COOKIE);
    const credentials = resolve(token);
    c.set("credentials", credentials);
    if (token !== undefined && credentials.role !== undefined) {
      c.set("session", {
        role: credentials.role,
        name: credentials.name,
        digest: credentials.digest,
        api: createInProcessClient(app, token),
        canAct: ranksAtLeast(credentials.role, "operator"),
      });
    }
    await next();
  });
}

/** Pages need a session: without one, to the sign-in page and back here after it (a live refresh gets 401). */
export const requireSession = createMiddleware<DashboardEnv>(async (c, next) => {
  if (c.get("session") !== undefined) return next();
  if (c.req.header(LIVE_HEADER) !== undefined) return c.text("signed out", 401);
  const url = new URL(c.req.url);
  const next_ = `${url.pathname}${url.search}`;
  return c.redirect(next_ === "/" ? "/sign-in" : `/sign-in?next=${encodeURIComponent(next_)}`, 303);
});

/**
 * Form posts must come from a page of this site (the Origin header, which browsers set on every POST): with a
 * cookie session, a form on another site must not act in the user's name.
 */
export const sameOrigin = createMiddleware<DashboardEnv>(async (c, next) => {
  const origin = URL.parse(c.req.header("origin") ?? "");
  if (origin === null || origin.host !== new URL(c.req.url).host) {
    return c.text("refused: this form was not sent from a fieldq page", 403);
  }
  return next();
});
