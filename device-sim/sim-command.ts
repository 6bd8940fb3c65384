import { writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { parseDuration } from "../config/duration.js";
import type { Result } from "../contract/result.js";
import { DAY_MS, formatDuration, HOUR_MS } from "../contract/time.js";
import type { Logger } from "../observe/logger.js";
import { type BackfillStats, runBackfill } from "./backfill.js";
import { createProgress, grouped, type ProgressOutput } from "./progress.js";
import { type PublishedCounts, runSim, type SimStats } from "./run-sim.js";
import { DEFAULT_SCENARIO, listShippedScenarios, loadScenario } from "./scenario/parse.js";
import { planScenario, type ScenarioPlan } from "./scenario/plan.js";
import type { Scenario } from "./scenario/schema.js";
import { type ScoreCommandEnv, scoreCommand } from "./score-command.js";

// `fieldq sim`: runs a scenario against a broker, live or as a backfill, and writes its ground truth;
// `fieldq sim scenarios` lists the shipped ones; `fieldq sim score` hands over to score-command.ts.

export type SimCommandEnv = {
  secret?: string;
  mqttUrl?: string;
  /** The ingest's limits on device clocks (FIELDQ_CLOCK_SKEW_PAST / _FUTURE): a run stays within them. */
  clockSkewPastMs?: number;
  clockSkewFutureMs?: number;
  /** What `sim score` reads: the environment, .env included. */
  vars?: ScoreCommandEnv;
};

export type SimCommandIo = {
  out: (line: string) => void;
  err: (line: string) => void;
  /** Stops the run like SIGINT does. */
  signal?: AbortSignal;
  run: typeof runSim;
  backfill: typeof runBackfill;
  score: typeof scoreCommand;
  /** Where progress goes (stderr). */
  progress: ProgressOutput;
  /** The moment of the run, epoch ms. */
  now: () => number;
  writeFile: (path: string, text: string) => Promise<void>;
};

export const SIM_DEFAULTS = {
  broker: "mqtt://127.0.0.1:1883",
  scenario: DEFAULT_SCENARIO,
  mode: "live",
  speed: 1,
  pool: 50,
  clockSkewPastMs: 60 * DAY_MS,
  clockSkewFutureMs: 10 * 60_000,
} as const;

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

const MAX_DEVICES = 1_000_000;
const MAX_POOL = 5_000;
const BROKER_PROTOCOLS = ["mqtt:", "mqtts:", "tcp:", "ssl:", "ws:", "wss:"];
const MODES = ["live", "backfill"] as const;
type Mode = (typeof MODES)[number];

const ISO_WITH_ZONE = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$/;

function usage(broker: string): string[] {
  return [
    "Usage: fieldq sim [run] [options]      run a scenario against a fieldq broker",
    "       fieldq sim scenarios            list the shipped scenarios",
    "       fieldq sim score <truth.json>   ask the fieldq API what it found (sim score --help)",
    "",
    "Devices connect with their own keys (FIELDQ_DEVICE_SECRET, the broker's device secret) and publish",
    "hello, telemetry, faults and events; the run writes the ground truth of what its scenario injected.",
    "",
    "Options:",
    `  --scenario <name|file>  a shipped scenario or a YAML/JSON file (default ${SIM_DEFAULTS.scenario})`,
    `  --mode <live|backfill>  live: in (sped-up) real time, each device on its own connection;`,
    "                          backfill: the scenario's history as fast as fieldq takes it, devices",
    `                          cycling through --pool connections (default ${SIM_DEFAULTS.mode})`,
    "  --seed <n>              the same scenario, seed and start give the same messages (default: the",
    "                          scenario's seed)",
    "  --start <time>          scenario start: now, --start=-14d or an ISO time (default: live, now,",
    "                          or earlier at --speed > 1 so as to end at the present; backfill, the",
    "                          scenario's start, moved back so that the history ends by now)",
    "  --duration <time>       scenario time to cover: 90m, 12h, 7d (default: the scenario's)",
    `  --speed <x>             live: scenario time runs x times as fast as the clock (default ${SIM_DEFAULTS.speed})`,
    `  --pool <n>              backfill: connections at once (default ${SIM_DEFAULTS.pool})`,
    "  --follow                backfill: afterwards keep the fleet running live, in real time, until stopped",
    "  --devices <n>           scale the scenario's fleet to about n devices",
    `  --broker <url>          MQTT broker (default ${broker})`,
    "  --truth <file>          where the ground truth goes (default ./fieldq-truth-<scenario>.json)",
    "  -h, --help              show this help",
    "",
    "Device timestamps are scenario time. A live run at --speed x > 1 starts its clock in the past and",
    "catches up with yours as it ends; a backfill ends at the present unless --start says otherwise.",
  ];
}

const SCENARIOS_USAGE = [
  "Usage: fieldq sim scenarios",
  "",
  "Lists the scenarios shipped in scenarios/: name, fleet size, time span and what each is for.",
  "Run one with `fieldq sim --scenario <name>`; copy its file to make your own.",
];

const RUN_OPTIONS = {
  help: { type: "boolean", short: "h" },
  scenario: { type: "string" },
  mode: { type: "string" },
  seed: { type: "string" },
  start: { type: "string" },
  duration: { type: "string" },
  speed: { type: "string" },
  pool: { type: "string" },
  follow: { type: "boolean" },
  devices: { type: "string" },
  broker: { type: "string" },
  truth: { type: "string" },
} as const;

type Flags = ReturnType<
  typeof parseArgs<{ args: string[]; strict: true; options: typeof RUN_OPTIONS }>
>["values"];

const isParseArgsError = (error: unknown): error is Error & { code: string } =>
  error instanceof Error && "code" in error && String(error.code).startsWith("ERR_PARSE_ARGS");

function readFlags(argv: string[]): Result<Flags, string> {
  try {
    return { ok: true, value: parseArgs({ args: argv, strict: true, options: RUN_OPTIONS }).values };
  } catch (error) {
    if (!isParseArgsError(error)) throw error;
    return { ok: false, error: error.message };
  }
}

function integer(name: string, text: string, min: number, max: number): Result<number, string> {
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  return Number.isSafeInteger(value) && value >= min && value <= max
    ? { ok: true, value }
    : { ok: false, error: `--${name} must be a whole number from ${min} to ${max}, not "${text}"` };
}

function duration(name: string, text: string): Result<number, string> {
  const ms = parseDuration(text);
  return ms !== undefined && ms > 0
    ? { ok: true, value: ms }
    : { ok: false, error: `--${name} must be a duration such as 90m, 12h or 7d, not "${text}"` };
}

function speed(text: string): Result<number, string> {
  const value = Number(text);
  return text.trim() !== "" && value > 0 && value <= 1_000_000
    ? { ok: true, value }
    : { ok: false, error: `--speed must be a number above 0 and at most 1000000, not "${text}"` };
}

/** now, -14d (before now) or an ISO time with a zone, as epoch ms. */
function startTime(text: string, nowMs: number): Result<number, string> {
  if (text === "now") return { ok: true, value: nowMs };
  if (text.startsWith("-")) {
    const ms = parseDuration(text.slice(1));
    if (ms !== undefined) return { ok: true, value: nowMs - ms };
  }
  const ms = ISO_WITH_ZONE.test(text) ? Date.parse(text) : Number.NaN;
  return Number.isNaN(ms)
    ? {
        ok: false,
        error: `--start must be now, a time before now such as -14d, or an ISO time, not "${text}"`,
      }
    : { ok: true, value: ms };
}

function brokerUrl(text: string): Result<string, string> {
  const protocol = URL.canParse(text) ? new URL(text).protocol : undefined;
  return protocol !== undefined && BROKER_PROTOCOLS.includes(protocol)
    ? { ok: true, value: text }
    : { ok: false, error: `--broker must be a URL such as mqtt://127.0.0.1:1883, not "${text}"` };
}

export type RunRequest = {
  scenario: string;
  mode: Mode;
  seed?: number;
  startMs?: number;
  durationMs?: number;
  speed: number;
  pool: number;
  follow: boolean;
  devices?: number;
  brokerUrl: string;
  truthPath?: string;
};

function runRequest(flags: Flags, defaultBroker: string, nowMs: number): Result<RunRequest, string> {
  const mode = flags.mode ?? SIM_DEFAULTS.mode;
  if (!(MODES as readonly string[]).includes(mode)) {
    return { ok: false, error: `--mode must be live or backfill, not "${mode}"` };
  }
  const checks = {
    broker: brokerUrl(flags.broker ?? defaultBroker),
    seed: flags.seed === undefined ? undefined : integer("seed", flags.seed, 0, 0xffffffff),
    start: flags.start === undefined ? undefined : startTime(flags.start, nowMs),
    duration: flags.duration === undefined ? undefined : duration("duration", flags.duration),
    speed: speed(flags.speed ?? String(SIM_DEFAULTS.speed)),
    pool: integer("pool", flags.pool ?? String(SIM_DEFAULTS.pool), 1, MAX_POOL),
    devices: flags.devices === undefined ? undefined : integer("devices", flags.devices, 1, MAX_DEVICES),
  };
  for (const check of Object.values(checks)) if (check?.ok === false) return check;
  const value = <T>(r: Result<T, string> | undefined) => (r?.ok ? r.value : undefined);
  if (mode === "backfill" && flags.speed !== undefined) {
    return { ok: false, error: "--speed is for live mode; a backfill goes as fast as fieldq takes it" };
  }
  if (mode === "live" && (flags.pool !== undefined || flags.follow === true)) {
    return { ok: false, error: `--${flags.pool !== undefined ? "pool" : "follow"} is for --mode backfill` };
  }
  const request: RunRequest = {
    scenario: flags.scenario ?? SIM_DEFAULTS.scenario,
    mode: mode as Mode,
    speed: value(checks.speed) ?? SIM_DEFAULTS.speed,
    pool: value(checks.pool) ?? SIM_DEFAULTS.pool,
    follow: flags.follow === true,
    brokerUrl: value(checks.broker) ?? defaultBroker,
  };
  const optional = {
    seed: value(checks.seed),
    startMs: value(checks.start),
    durationMs: value(checks.duration),
    devices: value(checks.devices),
    truthPath: flags.truth,
  };
  for (const [key, v] of Object.entries(optional)) if (v !== undefined) Object.assign(request, { [key]: v });
  return { ok: true, value: request };
}

/** The fleet's counts scaled to about `devices` in all, each entry keeping at least one device. */
export function scaleFleet(scenario: Scenario, devices: number): Scenario {
  const total = scenario.fleet.reduce((sum, entry) => sum + entry.count, 0);
  // Largest remainder, so the counts add up to the target whenever every entry can keep one.
  const exact = scenario.fleet.map((entry) => (entry.count * devices) / total);
  const counts = exact.map(Math.floor);
  const order = exact.map((x, i) => ({ i, rest: x - Math.floor(x) })).sort((a, b) => b.rest - a.rest);
  let left = devices - counts.reduce((sum, c) => sum + c, 0);
  for (const { i } of order) {
    if (left <= 0) break;
    counts[i] = (counts[i] ?? 0) + 1;
    left -= 1;
  }
  return {
    ...scenario,
    fleet: scenario.fleet.map((entry, i) => ({ ...entry, count: Math.max(1, counts[i] ?? 1) })),
  };
}

/**
 * The run's scenario time. Device clocks must not run ahead of the wall clock (fieldq stores such messages
 * at their receive time, flagged): a live run at speed x ends duration / x from now, a backfill at once.
 * Without --start a live run starts as late as that allows, a backfill at the scenario's start or earlier;
 * an explicit start that runs ahead is a usage error.
 */
export function runWindow(
  scenario: Scenario,
  request: Pick<RunRequest, "mode" | "speed" | "startMs" | "durationMs">,
  nowMs: number,
  skew: { pastMs: number; futureMs: number },
): Result<{ startMs: number; durationMs: number }, string> {
  const durationMs = request.durationMs ?? scenario.duration;
  const wallEndMs = nowMs + (request.mode === "live" ? durationMs / request.speed : 0);
  const latestStart = Math.floor(wallEndMs - durationMs);
  // A live run plays the scenario from now; the scenario's own start is where a backfill begins.
  const planned = scenario.start.from === "now" ? nowMs + scenario.start.offsetMs : scenario.start.ms;
  const startMs = request.startMs ?? (request.mode === "live" ? latestStart : Math.min(planned, latestStart));
  const aheadMs = startMs + durationMs - wallEndMs;
  if (aheadMs > skew.futureMs) {
    return {
      ok: false,
      error: `--start ${new Date(startMs).toISOString()} would stamp messages up to ${formatDuration(aheadMs)} ahead of the clock; fieldq stores those at receive time (FIELDQ_CLOCK_SKEW_FUTURE). Leave --start out, or give one before ${new Date(latestStart).toISOString()}`,
    };
  }
  if (nowMs - startMs > skew.pastMs) {
    return {
      ok: false,
      error: `the run starts ${formatDuration(nowMs - startMs)} ago; fieldq keeps device time only up to ${formatDuration(skew.pastMs)} back (FIELDQ_CLOCK_SKEW_PAST): give a later --start or a shorter --duration`,
    };
  }
  return { ok: true, value: { startMs, durationMs } };
}

/** A scenario's span as its file would write it: 3d, 36h, 90m. */
function span(ms: number): string {
  for (const [unit, size] of [
    ["d", DAY_MS],
    ["h", HOUR_MS],
    ["m", 60_000],
  ] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return formatDuration(ms);
}

function countsLine(published: PublishedCounts): string {
  const { raw, ...wellFormed } = published;
  const parts = Object.entries(wellFormed).map(([channel, n]) => `${channel} ${grouped(n)}`);
  return `  messages    ${parts.join("  ")}  malformed ${grouped(raw)}`;
}

function liveSummary(stats: SimStats): string[] {
  return [
    `live run: ${grouped(stats.devices)} devices, ${grouped(stats.ticks)} ticks, scenario time reached ${new Date(stats.scenarioMs).toISOString()}`,
    countsLine(stats.published),
    `  refused by the broker ${grouped(stats.refused)}  commands answered ${grouped(stats.commands)}  silent devices ${grouped(stats.silent)}  failed publishes ${grouped(stats.failed)}`,
  ];
}

function backfillSummary(stats: BackfillStats, elapsedMs: number): string[] {
  const messages = Object.values(stats.published).reduce((sum, n) => sum + n, 0);
  const rate = elapsedMs > 0 ? Math.round((messages * 1000) / elapsedMs) : 0;
  return [
    `backfill: ${grouped(stats.flushed)}/${grouped(stats.devices)} devices flushed in ${formatDuration(elapsedMs)} (${grouped(rate)} msg/s, ${grouped(stats.samples)} telemetry samples)`,
    countsLine(stats.published),
    `  refused by the broker ${grouped(stats.refused)}  silent devices ${grouped(stats.silent)}  failed devices ${grouped(stats.failed)}  reconnects ${grouped(stats.retries)}`,
  ];
}

type Context = {
  env: SimCommandEnv;
  logger: Logger;
  io: SimCommandIo;
};

async function listScenarios(argv: string[], { io }: Context): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    for (const line of SCENARIOS_USAGE) io.out(line);
    return EXIT_OK;
  }
  if (argv.length > 0) {
    io.err(`fieldq sim scenarios: takes no arguments, not "${argv.join(" ")}"`);
    return EXIT_USAGE;
  }
  for (const name of await listShippedScenarios()) {
    const loaded = await loadScenario(name);
    if (!loaded.ok) {
      io.out(`${name.padEnd(24)} (does not load: ${loaded.errors[0]?.text ?? "unknown problem"})`);
      continue;
    }
    const { scenario } = loaded;
    const devices = scenario.fleet.reduce((sum, entry) => sum + entry.count, 0);
    const about = scenario.description?.split("\n")[0]?.trim() ?? "";
    io.out(
      `${name.padEnd(24)} ${`${grouped(devices)} devices`.padEnd(14)} ${span(scenario.duration).padEnd(6)} ${about}`,
    );
  }
  return EXIT_OK;
}

/** Waits for SIGINT, SIGTERM or the io signal, and calls `stop` once. Returns the detach function. */
function onStop(io: SimCommandIo, logger: Logger, stop: () => void): () => void {
  const handler = (signal: NodeJS.Signals | "abort") => {
    logger.info({ signal }, "stopping the simulator");
    stop();
  };
  const onAbort = () => handler("abort");
  process.once("SIGINT", handler);
  process.once("SIGTERM", handler);
  io.signal?.addEventListener("abort", onAbort, { once: true });
  if (io.signal?.aborted) onAbort();
  return () => {
    process.off("SIGINT", handler);
    process.off("SIGTERM", handler);
    io.signal?.removeEventListener("abort", onAbort);
  };
}

async function run(argv: string[], context: Context): Promise<number> {
  const { env, logger, io } = context;
  const defaultBroker = env.mqttUrl ?? SIM_DEFAULTS.broker;
  const usageError = (problem: string) => {
    io.err(`fieldq sim: ${problem}`);
    io.err("Run `fieldq sim --help` for the options.");
    return EXIT_USAGE;
  };
  const flags = readFlags(argv);
  if (!flags.ok) return usageError(flags.error);
  if (flags.value.help === true) {
    for (const line of usage(defaultBroker)) io.out(line);
    return EXIT_OK;
  }
  const nowMs = io.now();
  const parsed = runRequest(flags.value, defaultBroker, nowMs);
  if (!parsed.ok) return usageError(parsed.error);
  const request = parsed.value;
  const loaded = await loadScenario(request.scenario);
  if (!loaded.ok) {
    io.err(`fieldq sim: the scenario ${request.scenario} has problems:`);
    for (const error of loaded.errors) io.err(`  ${error.text}`);
    return EXIT_USAGE;
  }
  const scenario =
    request.devices === undefined ? loaded.scenario : scaleFleet(loaded.scenario, request.devices);
  const window = runWindow(scenario, request, nowMs, {
    pastMs: env.clockSkewPastMs ?? SIM_DEFAULTS.clockSkewPastMs,
    futureMs: env.clockSkewFutureMs ?? SIM_DEFAULTS.clockSkewFutureMs,
  });
  if (!window.ok) return usageError(window.error);
  let plan: ScenarioPlan;
  try {
    plan = planScenario(
      { ...scenario, start: { from: "fixed", ms: window.value.startMs }, duration: window.value.durationMs },
      { seed: request.seed, nowMs },
    );
  } catch (error) {
    io.err(
      `fieldq sim: cannot plan ${scenario.name}: ${error instanceof Error ? error.message : String(error)}`,
    );
    return EXIT_USAGE;
  }
  for (const warning of plan.warnings) io.err(`fieldq sim: warning: ${warning}`);
  // Checked after the scenario, so a broken one is reported for what is wrong with it.
  if (env.secret === undefined || env.secret === "") {
    io.err(
      "fieldq sim: set FIELDQ_DEVICE_SECRET to the broker's device secret; devices derive their keys from it",
    );
    return EXIT_USAGE;
  }

  const truthPath = request.truthPath ?? `./fieldq-truth-${scenario.name}.json`;
  try {
    await io.writeFile(truthPath, `${JSON.stringify(plan.truth, null, 2)}\n`);
  } catch (error) {
    io.err(`fieldq sim: cannot write the ground truth to ${truthPath}: ${(error as Error).message}`);
    return EXIT_FAILED;
  }
  const seed = plan.truth.seed;
  io.out(
    `${scenario.name} (seed ${seed}): ${grouped(plan.devices.length)} devices, ${new Date(plan.startMs).toISOString()} → ${new Date(plan.endMs).toISOString()}, ${request.mode}${request.mode === "live" ? ` at ${request.speed}×` : ""}`,
  );
  io.out(`ground truth written to ${truthPath} (score it with: fieldq sim score ${truthPath})`);

  const common = { brokerUrl: request.brokerUrl, secret: env.secret, plan, seed, logger };
  const connectError = (error: unknown) => {
    logger.error({ err: error, broker: request.brokerUrl }, "the simulated fleet could not connect");
    io.err(
      `fieldq sim: could not connect to ${request.brokerUrl}: ${error instanceof Error ? error.message : String(error)}`,
    );
    return EXIT_FAILED;
  };

  if (request.mode === "backfill") {
    const stopping = new AbortController();
    const detach = onStop(io, logger, () => stopping.abort());
    const progress = createProgress({ label: "backfill", unit: "devices", output: io.progress });
    const started = performance.now();
    let stats: BackfillStats;
    try {
      stats = await io.backfill({
        ...common,
        pool: request.pool,
        signal: stopping.signal,
        onProgress: (snapshot) => progress.update(snapshot),
      });
    } finally {
      detach();
    }
    const messages = Object.values(stats.published).reduce((sum, n) => sum + n, 0);
    progress.finish({ done: stats.flushed + stats.failed, total: stats.devices, messages });
    for (const line of backfillSummary(stats, performance.now() - started)) io.out(line);
    if (stats.flushed === 0 && stats.devices > 0) {
      io.err(`fieldq sim: no device could flush its history to ${request.brokerUrl}; see the log`);
      return EXIT_FAILED;
    }
    if (!request.follow || stopping.signal.aborted) return EXIT_OK;
    io.out("following: the fleet carries on live, in real time, until stopped");
    return live(
      { ...common, plan: { ...plan, endMs: Number.POSITIVE_INFINITY }, fromMs: plan.endMs, speed: 1 },
      context,
      connectError,
    );
  }
  return live({ ...common, speed: request.speed }, context, connectError);
}

async function live(
  options: Parameters<typeof runSim>[0],
  { io, logger }: Context,
  connectError: (error: unknown) => number,
): Promise<number> {
  const progress = createProgress({
    label: "connecting",
    unit: "devices",
    messages: false,
    output: io.progress,
  });
  let handle: Awaited<ReturnType<typeof runSim>>;
  try {
    handle = await io.run({ ...options, onProgress: (snapshot) => progress.update(snapshot) });
  } catch (error) {
    return connectError(error);
  }
  const connected = handle.stats().connected;
  progress.finish({ done: connected, total: connected, messages: 0 });
  const detach = onStop(io, logger, () => void handle.stop());
  try {
    await handle.done;
  } finally {
    detach();
  }
  for (const line of liveSummary(handle.stats())) io.out(line);
  return EXIT_OK;
}

/** `fieldq sim …`: resolves to the exit code. */
export async function simCommand(
  argv: string[],
  env: SimCommandEnv,
  logger: Logger,
  io: Partial<SimCommandIo> = {},
): Promise<number> {
  const context: Context = {
    env,
    logger,
    io: {
      out: (line) => process.stdout.write(`${line}\n`),
      err: (line) => process.stderr.write(`${line}\n`),
      run: runSim,
      backfill: runBackfill,
      score: scoreCommand,
      progress: process.stderr,
      now: () => Date.now(),
      writeFile: (path, text) => writeFile(path, text, "utf8"),
      ...io,
    },
  };
  const [first, ...rest] = argv;
  switch (first) {
    case "scenarios":
      return listScenarios(rest, context);
    case "score":
      return context.io.score(rest, env.vars ?? {}, { out: context.io.out, err: context.io.err });
    case "run":
      return run(rest, context);
    default:
      return run(argv, context);
  }
}
