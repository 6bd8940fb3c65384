import { parseArgs } from "node:util";
import { parseDuration } from "../config/duration.js";
import type { Logger } from "../observe/logger.js";
import { runSim, type SimHandle, type SimOptions } from "./run-sim.js";

export type SimCommandEnv = { secret?: string; mqttUrl?: string };

export type SimCommandIo = {
  out: (line: string) => void;
  err: (line: string) => void;
  /** Stops the run like SIGINT does. */
  signal?: AbortSignal;
  run: typeof runSim;
};

export const SIM_DEFAULTS = {
  broker: "mqtt://127.0.0.1:1883",
  devices: 20,
  seed: 1,
  interval: "5s",
  speed: 1,
};

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

const MIN_INTERVAL_MS = 100;
const MAX_DEVICES = 9999;
const BROKER_PROTOCOLS = ["mqtt:", "mqtts:", "tcp:", "ssl:", "ws:", "wss:"];

function usage(broker: string): string[] {
  return [
    "Usage: fieldq sim [options]",
    "",
    "Simulates a fleet of modems and printers that connect with their own keys and publish",
    "hello, telemetry, faults and events. Needs FIELDQ_DEVICE_SECRET, the broker's device secret.",
    "",
    "Options:",
    `  --broker <url>       MQTT broker (default ${broker})`,
    `  --devices <n>        fleet size, 1-${MAX_DEVICES} (default ${SIM_DEFAULTS.devices})`,
    `  --seed <n>           the same seed gives the same fleet and the same story (default ${SIM_DEFAULTS.seed})`,
    `  --interval <time>    telemetry cadence per device: 500ms, 5s, 1m (default ${SIM_DEFAULTS.interval})`,
    "  --duration <time>    run this long, then exit (default: until Ctrl-C)",
    `  --speed <x>          model time per tick is interval × speed (default ${SIM_DEFAULTS.speed})`,
    "  -h, --help           show this help",
  ];
}

type Result<T> = { ok: true; value: T } | { ok: false; problem: string };

const PARSE_ARGS_OPTIONS = {
  help: { type: "boolean", short: "h" },
  broker: { type: "string" },
  devices: { type: "string" },
  seed: { type: "string" },
  interval: { type: "string" },
  duration: { type: "string" },
  speed: { type: "string" },
} as const;

type Flags = ReturnType<
  typeof parseArgs<{ args: string[]; strict: true; options: typeof PARSE_ARGS_OPTIONS }>
>["values"];

const isParseArgsError = (error: unknown): error is Error & { code: string } =>
  error instanceof Error && "code" in error && String(error.code).startsWith("ERR_PARSE_ARGS");

function readFlags(argv: string[]): Result<Flags> {
  try {
    return { ok: true, value: parseArgs({ args: argv, strict: true, options: PARSE_ARGS_OPTIONS }).values };
  } catch (error) {
    if (!isParseArgsError(error)) throw error;
    return { ok: false, problem: error.message };
  }
}

function integer(name: string, text: string, min: number, max: number): Result<number> {
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  return Number.isSafeInteger(value) && value >= min && value <= max
    ? { ok: true, value }
    : { ok: false, problem: `--${name} must be a whole number from ${min} to ${max}, not "${text}"` };
}

function duration(name: string, text: string): Result<number> {
  const ms = parseDuration(text);
  if (ms === undefined)
    return { ok: false, problem: `--${name} must be a duration such as 500ms, 5s or 1m, not "${text}"` };
  if (ms < MIN_INTERVAL_MS) return { ok: false, problem: `--${name} must be at least ${MIN_INTERVAL_MS}ms` };
  return { ok: true, value: ms };
}

function speed(text: string): Result<number> {
  const value = Number(text);
  return text.trim() !== "" && value > 0 && value <= 100_000
    ? { ok: true, value }
    : { ok: false, problem: `--speed must be a number above 0, not "${text}"` };
}

function brokerUrl(text: string): Result<string> {
  const protocol = URL.canParse(text) ? new URL(text).protocol : undefined;
  return protocol !== undefined && BROKER_PROTOCOLS.includes(protocol)
    ? { ok: true, value: text }
    : { ok: false, problem: `--broker must be a URL such as mqtt://127.0.0.1:1883, not "${text}"` };
}

function simOptions(flags: Flags, defaultBroker: string): Result<Omit<SimOptions, "secret" | "logger">> {
  const broker = brokerUrl(flags.broker ?? defaultBroker);
  const devices = integer("devices", flags.devices ?? String(SIM_DEFAULTS.devices), 1, MAX_DEVICES);
  const seed = integer("seed", flags.seed ?? String(SIM_DEFAULTS.seed), 0, 0xffffffff);
  const intervalMs = duration("interval", flags.interval ?? SIM_DEFAULTS.interval);
  const durationMs = flags.duration === undefined ? undefined : duration("duration", flags.duration);
  const pace = speed(flags.speed ?? String(SIM_DEFAULTS.speed));
  if (!broker.ok) return broker;
  if (!devices.ok) return devices;
  if (!seed.ok) return seed;
  if (!intervalMs.ok) return intervalMs;
  if (durationMs?.ok === false) return durationMs;
  if (!pace.ok) return pace;
  const options: Omit<SimOptions, "secret" | "logger"> = {
    brokerUrl: broker.value,
    devices: devices.value,
    seed: seed.value,
    intervalMs: intervalMs.value,
    speed: pace.value,
  };
  if (durationMs?.ok) options.durationMs = durationMs.value;
  return { ok: true, value: options };
}

/** `fieldq sim [options]`: runs until SIGINT, SIGTERM or --duration; resolves to the exit code. */
export async function simCommand(
  argv: string[],
  env: SimCommandEnv,
  logger: Logger,
  io: Partial<SimCommandIo> = {},
): Promise<number> {
  const out = io.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const err = io.err ?? ((line: string) => process.stderr.write(`${line}\n`));
  const run = io.run ?? runSim;
  const defaultBroker = env.mqttUrl ?? SIM_DEFAULTS.broker;

  const flags = readFlags(argv);
  if (!flags.ok) {
    err(`fieldq sim: ${flags.problem}`);
    err("Run `fieldq sim --help` for the options.");
    return EXIT_USAGE;
  }
  if (flags.value.help === true) {
    for (const line of usage(defaultBroker)) out(line);
    return EXIT_OK;
  }
  const parsed = simOptions(flags.value, defaultBroker);
  if (!parsed.ok) {
    err(`fieldq sim: ${parsed.problem}`);
    return EXIT_USAGE;
  }
  if (env.secret === undefined || env.secret === "") {
    err(
      "fieldq sim: set FIELDQ_DEVICE_SECRET to the broker's device secret; devices derive their keys from it",
    );
    return EXIT_USAGE;
  }
  const options = parsed.value;

  let handle: SimHandle;
  try {
    handle = await run({ ...options, secret: env.secret, logger });
  } catch (error) {
    logger.error({ err: error, broker: options.brokerUrl }, "the simulated fleet could not connect");
    err(
      `fieldq sim: could not connect to ${options.brokerUrl}: ${error instanceof Error ? error.message : String(error)}`,
    );
    return EXIT_FAILED;
  }

  const onSignal = (signal: NodeJS.Signals | "abort") => {
    logger.info({ signal }, "stopping the simulator");
    void handle.stop();
  };
  const onAbort = () => onSignal("abort");
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  io.signal?.addEventListener("abort", onAbort, { once: true });
  if (io.signal?.aborted) onAbort();
  try {
    await handle.done;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    io.signal?.removeEventListener("abort", onAbort);
  }
  return EXIT_OK;
}
