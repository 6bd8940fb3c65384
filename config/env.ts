import { z } from "zod";
import { parseDuration } from "./duration.js";

// The one place that reads process.env: everything else receives a parsed Config.

const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);
const bytes = (fallback: number) => z.coerce.number().int().positive().default(fallback);
const duration = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((text, ctx) => {
      const ms = parseDuration(text);
      if (ms === undefined) {
        ctx.addIssue({
          code: "custom",
          message: `"${text}" is not a duration such as 500ms, 10s, 5m, 12h, 90d`,
        });
        return z.NEVER;
      }
      return ms;
    });

export const ROLES = ["viewer", "operator", "admin"] as const;
export type Role = (typeof ROLES)[number];

export const ApiTokens = z
  .string()
  .default("")
  .transform((text, ctx) => {
    const tokens = new Map<string, Role>();
    for (const pair of text
      .split(",")
      .map((p) => p.trim())
      .filter(Boolean)) {
      const [role, token] = pair.split(/:(.*)/s);
      if (!(ROLES as readonly string[]).includes(role ?? "") || !token || token.length < 8) {
        ctx.addIssue({
          code: "custom",
          message: `"${role}:…" must be role:token, role one of ${ROLES.join(", ")}, token at least 8 characters`,
        });
        return z.NEVER;
      }
      tokens.set(token, role as Role);
    }
    return tokens;
  });

/** "FQ-Modem 7590=5m,FQ-Print Mk3=1m": how often each model is expected to report. */
export const ExpectedIntervals = z
  .string()
  .default("")
  .transform((text, ctx) => {
    const intervals = new Map<string, number>();
    for (const pair of text
      .split(",")
      .map((p) => p.trim())
      .filter(Boolean)) {
      const at = pair.lastIndexOf("=");
      const model = pair.slice(0, at).trim();
      const ms = parseDuration(pair.slice(at + 1));
      if (at < 1 || ms === undefined || ms <= 0) {
        ctx.addIssue({
          code: "custom",
          message: `"${pair}" must be model=duration, such as FQ-Modem 7590=5m`,
        });
        return z.NEVER;
      }
      intervals.set(model, ms);
    }
    return intervals;
  });

export const Env = z.object({
  FIELDQ_MQTT_HOST: z.string().default("0.0.0.0"),
  FIELDQ_MQTT_PORT: port(1883),
  FIELDQ_HTTP_HOST: z.string().default("0.0.0.0"),
  FIELDQ_HTTP_PORT: port(8080),
  FIELDQ_INFLUX_URL: z.url().default("http://127.0.0.1:8086"),
  FIELDQ_INFLUX_DB: z
    .string()
    .regex(/^[A-Za-z0-9_]{1,64}$/, "letters, digits and _ only")
    .default("fieldq"),
  FIELDQ_INFLUX_USER: z.string().optional(),
  FIELDQ_INFLUX_PASSWORD: z.string().optional(),
  FIELDQ_RAW_RETENTION: z
    .string()
    .regex(/^\d+[hdw]$/, "an InfluxDB duration such as 90d")
    .default("90d"),
  FIELDQ_DEVICE_SECRET: z.string().min(16, "must be at least 16 characters").optional(),
  FIELDQ_API_TOKENS: ApiTokens,
  FIELDQ_DATA_DIR: z.string().default(".fieldq/data"),
  FIELDQ_FINGERPRINT_RULES: z.string().min(1).optional(),
  FIELDQ_MAX_PAYLOAD_BYTES: bytes(64 * 1024),
  FIELDQ_JOURNAL_MAX_BYTES: bytes(1024 ** 3),
  FIELDQ_BATCH_POINTS: bytes(5000),
  FIELDQ_FLUSH_INTERVAL: duration("1s"),
  FIELDQ_ROLLUP_INTERVAL: duration("10s"),
  FIELDQ_CLOCK_SKEW_FUTURE: duration("10m"),
  FIELDQ_CLOCK_SKEW_PAST: duration("60d"),
  FIELDQ_VERIFY_DEVICE_HOURS: z.coerce.number().positive().default(500),
  FIELDQ_SILENT_FACTOR: z.coerce.number().min(1).default(3),
  FIELDQ_EXPECTED_INTERVALS: ExpectedIntervals,
  FIELDQ_LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  FIELDQ_LOG_FORMAT: z.enum(["pretty", "json"]).optional(),
});
export type Env = z.infer<typeof Env>;

export type InfluxConfig = {
  url: string;
  database: string;
  username?: string;
  password?: string;
  rawRetention: string;
};

export type Config = {
  mqtt: { host: string; port: number; deviceSecret: string | undefined; maxPayloadBytes: number };
  http: { host: string; port: number; tokens: Map<string, Role> };
  influx: InfluxConfig;
  ingest: {
    dataDir: string;
    /** A JSON file of fingerprint rules (docs/fingerprint-rules.example.json); none: kind + model + code. */
    fingerprintRules: string | undefined;
    journalMaxBytes: number;
    batchPoints: number;
    flushIntervalMs: number;
    /** How long written hours wait before their rollups are recomputed (rollup/runner.ts). */
    rollupIntervalMs: number;
    clockSkewFutureMs: number;
    clockSkewPastMs: number;
  };
  log: { level: Env["FIELDQ_LOG_LEVEL"]; format: "pretty" | "json" };
  analytics: {
    /** Device-hours the fixing firmware must run without recurrence before an issue closes as effective. */
    verifyDeviceHours: number;
    /** A device is silent after this many expected intervals without a report. */
    silentFactor: number;
    /** Per model; other models' intervals are learned from their own cadence. */
    expectedIntervals: Map<string, number>;
  };
};

export type ConfigResult = { ok: true; config: Config } | { ok: false; problems: string[] };

export function loadConfig(env: NodeJS.ProcessEnv = process.env): ConfigResult {
  const parsed = Env.safeParse(env);
  if (!parsed.success) {
    return { ok: false, problems: parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`) };
  }
  const e = parsed.data;
  const influx: InfluxConfig = {
    url: e.FIELDQ_INFLUX_URL,
    database: e.FIELDQ_INFLUX_DB,
    rawRetention: e.FIELDQ_RAW_RETENTION,
  };
  if (e.FIELDQ_INFLUX_USER !== undefined) influx.username = e.FIELDQ_INFLUX_USER;
  if (e.FIELDQ_INFLUX_PASSWORD !== undefined) influx.password = e.FIELDQ_INFLUX_PASSWORD;
  return {
    ok: true,
    config: {
      mqtt: {
        host: e.FIELDQ_MQTT_HOST,
        port: e.FIELDQ_MQTT_PORT,
        deviceSecret: e.FIELDQ_DEVICE_SECRET,
        maxPayloadBytes: e.FIELDQ_MAX_PAYLOAD_BYTES,
      },
      http: { host: e.FIELDQ_HTTP_HOST, port: e.FIELDQ_HTTP_PORT, tokens: e.FIELDQ_API_TOKENS },
      influx,
      ingest: {
        dataDir: e.FIELDQ_DATA_DIR,
        fingerprintRules: e.FIELDQ_FINGERPRINT_RULES,
        journalMaxBytes: e.FIELDQ_JOURNAL_MAX_BYTES,
        batchPoints: e.FIELDQ_BATCH_POINTS,
        flushIntervalMs: e.FIELDQ_FLUSH_INTERVAL,
        rollupIntervalMs: e.FIELDQ_ROLLUP_INTERVAL,
        clockSkewFutureMs: e.FIELDQ_CLOCK_SKEW_FUTURE,
        clockSkewPastMs: e.FIELDQ_CLOCK_SKEW_PAST,
      },
      log: {
        level: e.FIELDQ_LOG_LEVEL,
        format: e.FIELDQ_LOG_FORMAT ?? (process.stdout.isTTY ? "pretty" : "json"),
      },
      analytics: {
        verifyDeviceHours: e.FIELDQ_VERIFY_DEVICE_HOURS,
        silentFactor: e.FIELDQ_SILENT_FACTOR,
        expectedIntervals: e.FIELDQ_EXPECTED_INTERVALS,
      },
    },
  };
}

/** Loads ./.env into process.env where present; variables already set win. */
export function loadDotEnv(path = ".env"): boolean {
  try {
    process.loadEnvFile(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
}
