import { fork } from "node:child_process";
import { once } from "node:events";
import { HonoBase } from "hono/hono-base";
import { createLogger, silentLogger } from "../observe/logger.js";
import { startFieldq } from "../stack/start-stack.js";
import { benchConfig } from "./harness.js";

// bench:dashboard's server: the API with the dashboard, started as `fieldq api` starts it (startFieldq with
// the API part only; it listens once warm), in a child process so its CPU and memory are its own. Two bench
// instruments, nothing else: the clock can be set to the data set's end (as bench:api pins it), and every API
// call the dashboard makes in-process is timed, so a slow page can be traced to the call that made it slow.

/** An API call a page made in-process while it rendered. */
export type ApiCall = { path: string; status: number; ms: number };

type ChildMessage = { url: string; warmMs: number } | { calls: ApiCall[] } | { failed: string };

type RequestFn = (
  input: unknown,
  init?: unknown,
  env?: unknown,
  ctx?: unknown,
) => Response | Promise<Response>;

/** Wraps `request` of the app the dashboard is routed into (mount.tsx: app.route("/", ui)) to time its calls. */
function timeInProcessCalls(log: ApiCall[]) {
  const proto = HonoBase.prototype as unknown as {
    route: (this: { request: RequestFn }, ...args: unknown[]) => unknown;
  };
  const route = proto.route;
  const wrapped = new WeakSet<object>();
  proto.route = function (this: { request: RequestFn }, ...args: unknown[]) {
    if (args[0] === "/" && !wrapped.has(this)) {
      wrapped.add(this);
      const request = this.request;
      this.request = (input, init, env, ctx) => {
        const started = performance.now();
        const url = input instanceof Request ? input.url : String(input);
        const done = (response: Response) => {
          const { pathname, search } = new URL(url, "http://in-process");
          log.push({
            path: `${pathname}${search}`,
            status: response.status,
            ms: performance.now() - started,
          });
          return response;
        };
        const answer = request(input, init, env, ctx);
        return answer instanceof Response ? done(answer) : answer.then(done);
      };
    }
    return route.apply(this, args);
  };
}

/** Runs in the child: FIELDQ_BENCH_STACK_ENV is the config's environment (JSON), FIELDQ_BENCH_CLOCK_MS the clock. */
export async function runDashboardStack() {
  const clockMs = Number(process.env.FIELDQ_BENCH_CLOCK_MS ?? "");
  if (Number.isFinite(clockMs) && clockMs > 0) {
    // The data set's end is "now" when the server starts; the clock runs on from there.
    const shift = clockMs - Date.now();
    const realNow = Date.now;
    Date.now = () => realNow() + shift;
  }
  const log: ApiCall[] = [];
  timeInProcessCalls(log);
  const config = benchConfig(JSON.parse(process.env.FIELDQ_BENCH_STACK_ENV ?? "{}") as NodeJS.ProcessEnv);
  const level = process.env.FIELDQ_BENCH_STACK_LOG;
  const logger = level ? createLogger({ level, format: "json" }) : silentLogger;
  const started = performance.now();
  let stack: Awaited<ReturnType<typeof startFieldq>>;
  try {
    stack = await startFieldq(config, { logger }, { broker: false, api: true });
  } catch (error) {
    process.send?.({ failed: error instanceof Error ? error.message : String(error) } satisfies ChildMessage);
    process.exit(1);
  }
  const url = stack.apiUrl ?? "";
  process.send?.({ url, warmMs: performance.now() - started } satisfies ChildMessage);
  process.on("message", async (message: { kind: string }) => {
    if (message.kind === "calls") {
      process.send?.({ calls: log.splice(0) } satisfies ChildMessage);
    } else if (message.kind === "close") {
      await stack.close();
      process.exit(0);
    }
  });
}

export type DashboardStack = {
  url: string;
  /** From the fork until it listened (startFieldq waits for the API's warm-up). */
  startMs: number;
  /** From startFieldq's call until it listened, in the child. */
  warmMs: number;
  /** The in-process API calls since the last time this was asked. */
  calls(): Promise<ApiCall[]>;
  close(): Promise<void>;
};

/** Forks `script --stack-child` (the script calls runDashboardStack for that flag). */
export async function forkDashboardStack(
  script: string,
  env: NodeJS.ProcessEnv,
  clockMs: number | undefined,
): Promise<DashboardStack> {
  const forkedAt = performance.now();
  const child = fork(script, ["--stack-child"], {
    execArgv: process.execArgv,
    env: {
      ...process.env,
      FIELDQ_BENCH_STACK_ENV: JSON.stringify(env),
      FIELDQ_BENCH_CLOCK_MS: clockMs === undefined ? "" : String(clockMs),
    },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const exited = once(child, "exit").then(([code, signal]) =>
    signal ? `signal ${String(signal)}` : `exit code ${String(code)}`,
  );
  const first = await Promise.race([once(child, "message"), exited]);
  if (typeof first === "string") throw new Error(`the API child ended before listening (${first})`);
  const message = first[0] as ChildMessage;
  if ("failed" in message) throw new Error(`the API did not start: ${message.failed}`);
  if (!("url" in message)) throw new Error("the API child sent no address");
  return {
    url: message.url,
    warmMs: message.warmMs,
    startMs: performance.now() - forkedAt,
    async calls() {
      const answer = new Promise<ApiCall[]>((resolve, reject) => {
        const onMessage = (reply: ChildMessage) => {
          if ("calls" in reply) {
            child.off("message", onMessage);
            resolve(reply.calls);
          }
        };
        child.on("message", onMessage);
        exited.then((how) => reject(new Error(`the API child ended (${how})`)));
      });
      child.send({ kind: "calls" });
      return answer;
    },
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.send({ kind: "close" });
      await exited;
    },
  };
}
