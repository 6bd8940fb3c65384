import { Hono } from "hono";
import { createMiddleware } from "hono/factory";
import type { ApiLimits, AppType } from "../api/app.js";
import { type ApiEnv, credentialsOf } from "../api/auth.js";
import { keyOf, RateLimiter } from "../api/rate-limit.js";
import type { TokenSource } from "../api/token-book.js";
import type { Logger } from "../observe/logger.js";
import { type Assets, buildAssets } from "./assets.js";
import { ErrorState } from "./components.js";
import { Document, html } from "./layout.js";
import type { PageDeps, PageHandler } from "./page.js";
import { alertAction, alertsPage } from "./pages/alerts.js";
import { devicePage } from "./pages/device.js";
import { deviceCommandAction } from "./pages/device-commands.js";
import { deviceFeedbackAction } from "./pages/device-feedback.js";
import { devicesPage } from "./pages/devices.js";
import { firmwarePage } from "./pages/firmware.js";
import { issueAction, issuePage } from "./pages/issue.js";
import { issuesPage } from "./pages/issues.js";
import { overviewPage } from "./pages/overview.js";
import { promisesPage } from "./pages/promises.js";
import { reviewPage, reviewReport } from "./pages/review.js";
import { signInPage } from "./pages/sign-in.js";
import { silencePage } from "./pages/silence.js";
import {
  type DashboardEnv,
  forgetToken,
  rememberToken,
  requireSession,
  resolveSession,
  safeNext,
  sameOrigin,
} from "./session.js";

// The dashboard, served by the API's process beside /api/v1: server-rendered pages (hono JSX) over the API
// called in-process with the signed-in token, one small script for charts, live refresh and local times.

export type DashboardDeps = {
  /** The API's tokens: the same book, so a token added to or revoked from the file counts here at once. */
  tokens: TokenSource;
  logger: Logger;
  /** The API's limits: each page request counts once against its token (its own API calls do not). */
  limits?: ApiLimits | undefined;
  now?: () => number;
};

/** Adds the dashboard's routes to the API's app (api/start-api.ts `extend`). */
export function mountDashboard(app: AppType, deps: DashboardDeps): void {
  const now = deps.now ?? Date.now;
  const built = buildAssets();
  built.catch((error: unknown) => deps.logger.error({ err: error }, "the dashboard's scripts did not build"));
  const withAssets = async (): Promise<PageDeps> => ({ assets: await built, now });

  const ui = new Hono<DashboardEnv>();
  ui.onError(async (error, c) => {
    deps.logger.error({ err: error, path: c.req.path }, "dashboard page failed");
    const assets = await built.catch(() => undefined);
    if (assets === undefined)
      return c.text("fieldq: the dashboard could not be built; see the server's log", 500);
    return html(c, <Failure assets={assets} />, 500);
  });

  ui.get("/assets/:name", async (c) => {
    const asset = (await built).byName.get(c.req.param("name"));
    if (asset === undefined) return c.text("no such asset", 404);
    return c.body(asset.body.slice().buffer, 200, {
      "content-type": asset.type,
      "cache-control": "public, max-age=31536000, immutable",
    });
  });

  // Middleware by route, never "*": the sub-app is mounted at "/" and a wildcard would reach /api/v1 too.
  const credentials = credentialsOf(deps.tokens);
  const session = resolveSession(app, credentials);
  const limited = deps.limits === undefined ? pass : limitPages(deps.limits, now);
  const signedIn = [session, limited, requireSession] as const;
  const page = (handler: PageHandler) => async (c: Parameters<PageHandler>[0]) =>
    handler(c, await withAssets());

  ui.get("/sign-in", session, limited, async (c) =>
    c.get("session") !== undefined
      ? c.redirect(safeNext(c.req.query("next")), 303)
      : signInPage(c, await withAssets(), { next: c.req.query("next") ?? "/" }),
  );
  ui.post("/sign-in", limited, sameOrigin, async (c) => {
    const form = await c.req.parseBody();
    const token = typeof form.token === "string" ? form.token.trim() : "";
    const next = typeof form.next === "string" ? form.next : "/";
    if (token === "" || credentials(token).role === undefined) {
      return signInPage(c, await withAssets(), {
        next,
        status: 401,
        error:
          token === ""
            ? "Enter a token."
            : "That token is not valid. Check it for a typo, or ask an administrator for a new one.",
      });
    }
    rememberToken(c, token);
    return c.redirect(safeNext(next), 303);
  });
  ui.post("/sign-out", sameOrigin, (c) => {
    forgetToken(c);
    return c.redirect("/sign-in", 303);
  });

  ui.get("/", ...signedIn, page(overviewPage));
  ui.get("/issues", ...signedIn, page(issuesPage));
  ui.get("/issues/:id", ...signedIn, page(issuePage));
  ui.post("/issues/:id/:action", ...signedIn, sameOrigin, page(issueAction));
  ui.get("/devices", ...signedIn, page(devicesPage));
  ui.get("/devices/:id", ...signedIn, page(devicePage));
  ui.post("/devices/:id/commands", ...signedIn, sameOrigin, page(deviceCommandAction));
  ui.post("/devices/:id/feedback", ...signedIn, sameOrigin, page(deviceFeedbackAction));
  ui.get("/firmware", ...signedIn, page(firmwarePage));
  ui.get("/silence", ...signedIn, page(silencePage));
  ui.get("/alerts", ...signedIn, page(alertsPage));
  ui.post("/alerts/:id/:action", ...signedIn, sameOrigin, page(alertAction));
  ui.get("/promises", ...signedIn, page(promisesPage));
  ui.get("/review", ...signedIn, page(reviewPage));
  ui.get("/review/report", ...signedIn, page(reviewReport));

  app.route("/", ui as unknown as Hono<ApiEnv>);
}

function Failure(props: { assets: Assets }) {
  return (
    <Document title="Something went wrong" assets={props.assets} liveEverySeconds={0}>
      <main id="main">
        <h1>Something went wrong</h1>
        <ErrorState message="This page failed on the server; the cause is in fieldq's log. Reload to try again." />
        <p>
          <a href="/">Back to the overview</a>
        </p>
      </main>
    </Document>
  );
}

const pass = createMiddleware<DashboardEnv>((_, next) => next());

/** Each page request takes one token from its session's bucket (or its address's, signed out). */
function limitPages(limits: ApiLimits, now: () => number) {
  const limiter = new RateLimiter({ rate: limits.rate, burst: limits.burst }, limits.maxClients);
  return createMiddleware<DashboardEnv>(async (c, next) => {
    const result = limiter.take(keyOf(c.get("credentials"), c), now());
    if (result.ok) return next();
    const seconds = Math.max(1, Math.ceil(result.retryAfterMs / 1000));
    return c.text(`Too many requests: try again in ${seconds} s.`, 429, { "retry-after": String(seconds) });
  });
}
