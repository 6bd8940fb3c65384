import { OpenAPIHono } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import type { Logger } from "../observe/logger.js";
import type { Metrics } from "../observe/metrics.js";
import type { AlertService } from "../services/alerts.js";
import type { CommandService } from "../services/commands.js";
import type { DeviceService } from "../services/devices.js";
import type { FaultService } from "../services/faults.js";
import type { FeedbackService } from "../services/feedback.js";
import type { FirmwareService } from "../services/firmware.js";
import type { HealthService } from "../services/health.js";
import type { IssueService } from "../services/issues.js";
import type { PromiseService } from "../services/promises.js";
import type { ReviewService } from "../services/review.js";
import { type ApiEnv, authenticate, BEARER } from "./auth.js";
import { ApiError, handleError, handleNotFound, validationHook } from "./errors.js";
import { rateLimit } from "./rate-limit.js";
import { registerAlerts } from "./routes/alerts.js";
import { registerCommands } from "./routes/commands.js";
import { registerDevices } from "./routes/devices.js";
import { registerFaults } from "./routes/faults.js";
import { registerFeedback } from "./routes/feedback.js";
import { registerFirmware } from "./routes/firmware.js";
import { registerFleet } from "./routes/fleet.js";
import { registerHealth, type StackStatus } from "./routes/health.js";
import { registerIssues } from "./routes/issues.js";
import { registerPromises } from "./routes/promises.js";
import { registerReports } from "./routes/reports.js";
import type { TokenSource } from "./token-book.js";

export const OPENAPI_PATH = "/api/v1/openapi.json";

/** What one client may ask of the API (config.http). */
export type ApiLimits = {
  /** Requests per second per token, or per address without a valid token, and the burst above it. */
  rate: number;
  burst: number;
  maxBodyBytes: number;
  /** Clients whose buckets are kept at most (default 10,000). */
  maxClients?: number;
};

export type AppDeps = {
  devices: DeviceService;
  faults: FaultService;
  /** The tokens it accepts (api/token-book.ts); a fixed map for in-process callers (tests, benches). */
  tokens: TokenSource;
  logger: Logger;
  metrics: Pick<Metrics, "registry" | "apiRateLimited">;
  /** Without them nothing is limited: for in-process callers (tests, bench:api), not for a listener. */
  limits?: ApiLimits | undefined;
  /** Present when the API runs in the broker's process. */
  status?: StackStatus | undefined;
  /** Issues and their lifecycle; without it the issue routes answer 503 (unit tests of other routes). */
  issues?: IssueService | undefined;
  /** Fleet health and firmware cohorts; likewise. */
  health?: HealthService | undefined;
  /** Firmware comparisons and the regressions found without asking; likewise. */
  firmware?: FirmwareService | undefined;
  /** Remote commands, alerts, promises, feedback and the review; without one its routes answer 503. */
  commands?: CommandService | undefined;
  alerts?: AlertService | undefined;
  promises?: PromiseService | undefined;
  feedback?: FeedbackService | undefined;
  review?: ReviewService | undefined;
  /** Clock for default time windows and the request-rate buckets; tests pin it. */
  now?: () => number;
};

export type App = OpenAPIHono<ApiEnv>;

/**
 * Marks a request made inside the process (the dashboard rendering a page it has already counted against
 * its caller's limit): passed as app.request's env, which no remote client can set.
 */
export const IN_PROCESS = { fieldqInProcess: true } as const;
const inProcess = (env: unknown) => (env as Partial<typeof IN_PROCESS> | undefined)?.fieldqInProcess === true;

/** Paths probes and scrapers use: never turned away because another client on their address floods. */
const UNLIMITED: ReadonlySet<string> = new Set(["/api/v1/health"]);

function useLimits(app: App, limits: ApiLimits, deps: Pick<AppDeps, "metrics" | "now">) {
  const limited = rateLimit({
    rate: limits.rate,
    burst: limits.burst,
    now: deps.now ?? Date.now,
    ...(limits.maxClients === undefined ? {} : { maxClients: limits.maxClients }),
    onLimited: () => deps.metrics.apiRateLimited.inc(),
  });
  app.use("/api/v1/*", (c, next) =>
    UNLIMITED.has(c.req.path) || inProcess(c.env) ? next() : limited(c, next),
  );
  app.use(
    "/api/v1/*",
    bodyLimit({
      maxSize: limits.maxBodyBytes,
      onError: () => {
        throw new ApiError({
          code: "PAYLOAD_TOO_LARGE",
          message: `the request body is larger than ${limits.maxBodyBytes} bytes`,
        });
      },
    }),
  );
}

/** A service this API was built without: its routes are documented and answer 503. */
function notServed<T extends object>(what: string): T {
  return new Proxy({} as T, {
    // Not a thenable: only method calls answer 503.
    get: (_, name) =>
      name === "then"
        ? undefined
        : () => {
            throw new ApiError({ code: "UNAVAILABLE", message: `this API serves no ${what}` });
          },
  });
}

/** Every route, chained, so the app's type carries each route's request and response (api/client.ts). */
function withRoutes(app: App, deps: AppDeps) {
  const clock = deps.now ? { now: deps.now } : {};
  const issues = deps.issues ?? notServed<IssueService>("issues");
  const health = deps.health ?? notServed<HealthService>("fleet health");
  const firmware = deps.firmware ?? notServed<FirmwareService>("firmware verdicts");
  const commands = deps.commands ?? notServed<CommandService>("commands");
  const alerts = deps.alerts ?? notServed<AlertService>("alerts");
  const promises = deps.promises ?? notServed<PromiseService>("service promises");
  const feedback = deps.feedback ?? notServed<FeedbackService>("feedback");
  const review = deps.review ?? notServed<ReviewService>("management review");
  const closing = registerIssues(
    registerFirmware(
      registerFleet(
        registerFaults(
          registerDevices(registerHealth(app, { ...deps, ping: deps.devices.ping }), {
            devices: deps.devices,
            ...clock,
          }),
          { faults: deps.faults, ...clock },
        ),
        { health, ...clock },
      ),
      { health, firmware, ...clock },
    ),
    { issues, logger: deps.logger, ...clock },
  );
  return registerReports(
    registerFeedback(
      registerPromises(
        registerAlerts(registerCommands(closing, { commands, ...clock }), { alerts, ...clock }),
        { promises, ...clock },
      ),
      { feedback, ...clock },
    ),
    { review, ...clock },
  );
}

/** The API's type, for hono's typed client. */
export type AppType = ReturnType<typeof withRoutes>;

export function createApp(deps: AppDeps): AppType {
  const base = new OpenAPIHono<ApiEnv>({ defaultHook: validationHook });
  base.onError(handleError(deps.logger));
  base.notFound(handleNotFound);
  base.use("/api/v1/*", authenticate(deps.tokens));
  if (deps.limits) useLimits(base, deps.limits, deps);
  const app = withRoutes(base, deps);

  app.openAPIRegistry.registerComponent("securitySchemes", BEARER, {
    type: "http",
    scheme: "bearer",
    description:
      "A token from FIELDQ_API_TOKENS or the tokens file (`fieldq token add`); it names its holder, and its role (viewer < operator < admin) decides what it may do",
  });
  app.doc31(OPENAPI_PATH, {
    openapi: "3.1.0",
    info: {
      title: "fieldq API",
      version: "1.0.0",
      description:
        "Field-quality monitor: devices, telemetry, faults, issues and their lifecycle, fleet health, firmware cohorts",
    },
  });

  app.get("/metrics", async (c) => {
    const body = await deps.metrics.registry.metrics();
    return c.body(body, 200, { "content-type": deps.metrics.registry.contentType });
  });

  return app;
}
