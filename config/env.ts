import { z } from "zod";
import { parseDuration } from "./duration.js";

// The one place that reads process.env: everything else receives a parsed Config.

const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);
const bytes = (fallback: number) => z.coerce.number().int().positive().default(fallback);
const count = (fallback: number) => z.coerce.number().int().positive().default(fallback);
const rate = (fallback: number) => z.coerce.number().positive().default(fallback);
const flag = (fallback: boolean) =>
  z
    .enum(["true", "false", "on", "off", "1", "0"])
    .default(fallback ? "true" : "false")
    .transform((v) => v === "true" || v === "on" || v === "1");
const duration = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((text, ctx) => {
      // A bare 0 needs no unit.
      const ms = text.trim() === "0" ? 0 : parseDuration(text);
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

/** Names fieldq writes itself ("system" on lifecycle events), or that name the old role:token entries. */
export const RESERVED_NAMES: readonly string[] = ["system", "unknown", ...ROLES];

/**
 * Who holds a token, as audit entries, notes and commands show it: a person's name in any script, digits,
 * spaces, ".", "_" and "-", starting and ending with a letter or digit, at most 64 characters. No ":" or ","
 * (FIELDQ_API_TOKENS' separators), nothing that needs quoting in a log line, a CSV cell or HTML.
 */
export const TokenName = z
  .string()
  .max(64, "a name is at most 64 characters")
  .regex(
    /^[\p{L}\p{N}](?:[\p{L}\p{M}\p{N} ._-]*[\p{L}\p{M}\p{N}._-])?$/u,
    'a name is letters, digits, spaces, ".", "_" and "-", starting with a letter or digit, not ending with a space',
  )
  .refine((name) => !RESERVED_NAMES.includes(name.toLowerCase()), {
    message: `a name may not be ${RESERVED_NAMES.join(", ")} (fieldq's own)`,
  });

/** Who a token belongs to. */
export type TokenHolder = { role: Role; name: string };

/** Names compare without case: "Ana" and "ana" are one person in the audit trail. */
export const sameName = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

/**
 * FIELDQ_API_TOKENS: "role:name:token" entries (or the older "role:token", named after its role), comma-separated;
 * token → holder. A token with ":" in it needs the named form. Two entries naming one person, or one token
 * twice, are refused: the audit trail must say who did it.
 */
export const ApiTokens = z
  .string()
  .default("")
  .transform((text, ctx) => {
    const tokens = new Map<string, TokenHolder>();
    const problem = (message: string) => {
      ctx.addIssue({ code: "custom", message });
      return z.NEVER;
    };
    for (const entry of text
      .split(",")
      .map((p) => p.trim())
      .filter(Boolean)) {
      const parts = entry.split(":");
      const role = parts[0] ?? "";
      const named = parts.length >= 3;
      const shown = named ? `${role}:${parts[1]}:…` : `${role}:…`;
      if (!(ROLES as readonly string[]).includes(role)) {
        return problem(
          `"${shown}" must be role:name:token or role:token, the role one of ${ROLES.join(", ")}`,
        );
      }
      const token = (named ? parts.slice(2) : parts.slice(1)).join(":");
      if (token.length < 8) return problem(`"${shown}": the token must be at least 8 characters`);
      let name = role;
      if (named) {
        const parsed = TokenName.safeParse(parts[1]);
        if (!parsed.success) return problem(`"${shown}": ${parsed.error.issues[0]?.message}`);
        name = parsed.data;
        for (const holder of tokens.values()) {
          if (sameName(holder.name, name))
            return problem(`two tokens are named "${name}": a name is one person`);
        }
      }
      if (tokens.has(token)) return problem(`"${shown}": the same token is given twice`);
      tokens.set(token, { role: role as Role, name });
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
  /** false: no plain MQTT listener (TLS and WebSocket only). */
  FIELDQ_MQTT_PLAIN: flag(true),
  FIELDQ_MQTTS_PORT: port(8883),
  /** MQTT over WebSocket (wss when TLS is configured); unset: no WebSocket listener. */
  FIELDQ_MQTT_WS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  FIELDQ_TLS_CERT: z.string().min(1).optional(),
  FIELDQ_TLS_KEY: z.string().min(1).optional(),
  FIELDQ_DEVICE_RATE: rate(20),
  FIELDQ_DEVICE_BURST: count(200),
  FIELDQ_FLOOD_DROPS: count(2000),
  FIELDQ_MAX_CONNECTIONS: count(10_000),
  FIELDQ_MAX_CONNECTIONS_PER_IP: count(200),
  FIELDQ_AUTH_FAILURES_PER_MINUTE: count(30),
  FIELDQ_MAX_SUBSCRIPTIONS: count(16),
  FIELDQ_CONNECT_TIMEOUT: duration("10s"),
  /** Several fieldq brokers share sessions, subscriptions, retained messages and routing through this Redis. */
  FIELDQ_REDIS_URL: z.url().optional(),
  /** `fieldq ingest`: the external MQTT 5 broker whose device topics it consumes through a shared subscription. */
  FIELDQ_INGEST_BROKER_URL: z.url().optional(),
  FIELDQ_INGEST_BROKER_USERNAME: z.string().min(1).optional(),
  FIELDQ_INGEST_BROKER_PASSWORD: z.string().min(1).optional(),
  /** The shared subscription's group: every ingest process of one fieldq uses the same. */
  FIELDQ_INGEST_SHARE_GROUP: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/, "letters, digits, _ and -, 1 to 64")
    .default("fieldq"),
  /** This ingest process's client id on the external broker: stable, so a restart resumes its session. */
  FIELDQ_INGEST_CLIENT_ID: z.string().min(1).max(64).optional(),
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
  /** Tokens added with `fieldq token add`, kept as hashes; the API re-reads the file when it changes. */
  FIELDQ_TOKENS_FILE: z.string().min(1).default(".fieldq/tokens.json"),
  FIELDQ_API_RATE: rate(20),
  FIELDQ_API_BURST: count(100),
  FIELDQ_API_MAX_BODY_BYTES: bytes(64 * 1024),
  FIELDQ_DATA_DIR: z.string().default(".fieldq/data"),
  FIELDQ_FINGERPRINT_RULES: z.string().min(1).optional(),
  FIELDQ_MAX_PAYLOAD_BYTES: bytes(64 * 1024),
  FIELDQ_JOURNAL_MAX_BYTES: bytes(1024 ** 3),
  FIELDQ_BATCH_POINTS: bytes(5000),
  FIELDQ_BATCH_BYTES: bytes(4 * 1024 ** 2),
  FIELDQ_MAX_POINT_BYTES: bytes(64 * 1024),
  FIELDQ_MAX_METRIC_NAMES: count(5_000),
  FIELDQ_MAX_DEVICE_METRIC_NAMES: count(300),
  FIELDQ_MAX_LABEL_VALUES: count(10_000),
  FIELDQ_MAX_DEVICE_LABEL_VALUES: count(20),
  FIELDQ_FLUSH_INTERVAL: duration("250ms"),
  FIELDQ_ROLLUP_INTERVAL: duration("10s"),
  /** How often a device's device_state point is rewritten for its reports; 0: for every message. */
  FIELDQ_DEVICE_STATE_EVERY: duration("10s"),
  FIELDQ_CLOCK_SKEW_FUTURE: duration("10m"),
  FIELDQ_CLOCK_SKEW_PAST: duration("60d"),
  FIELDQ_VERIFY_DEVICE_HOURS: z.coerce.number().positive().default(500),
  /** How often the regression scan runs besides after each rollup recompute. */
  FIELDQ_REGRESSION_INTERVAL: duration("5m"),
  FIELDQ_SILENT_FACTOR: z.coerce.number().min(1).default(3),
  FIELDQ_EXPECTED_INTERVALS: ExpectedIntervals,
  /** Alert rules (docs/alert-rules.md); unset: the default rules. */
  /** Whether this broker process judges and sends alerts: with several brokers, exactly one should. */
  FIELDQ_ALERTING: flag(true),
  FIELDQ_ALERT_RULES: z.string().min(1).optional(),
  /** How often alert conditions are evaluated. */
  FIELDQ_ALERT_INTERVAL: duration("30s"),
  /** The simplest alert target: every alert is POSTed here, signed with FIELDQ_WEBHOOK_SECRET. */
  FIELDQ_WEBHOOK_URL: z.url().optional(),
  FIELDQ_WEBHOOK_SECRET: z.string().min(16, "must be at least 16 characters").optional(),
  /** The account a service uses to subscribe to fieldq/alerts/# on fieldq's broker; unset: no such account. */
  FIELDQ_ALERT_MQTT_USERNAME: z.string().min(1).optional(),
  FIELDQ_ALERT_MQTT_PASSWORD: z.string().min(16, "must be at least 16 characters").optional(),
  /** Service promises per model (docs/promises.md); unset: none promised. */
  FIELDQ_PROMISES: z.string().min(1).optional(),
  /** How long a command waits for its device before it expires. */
  FIELDQ_COMMAND_TTL: duration("24h"),
  /** Commands sent per second at most (bulk commands to a cohort go out at this rate). */
  FIELDQ_COMMAND_RATE: rate(20),
  /** The dashboard's address as people reach it, for links in alerts and reports; unset: none. */
  FIELDQ_PUBLIC_URL: z.url().optional(),
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

/** PEM files; when set, MQTT also listens over TLS and the API serves HTTPS. */
export type TlsConfig = { certPath: string; keyPath: string };

/** What one device, one address or the whole broker may cost the others (broker/). */
export type BrokerLimits = {
  /** A device's sustained messages per second, and the burst above it; QoS 1 beyond it waits, QoS 0 is dropped. */
  deviceRate: number;
  deviceBurst: number;
  /** A device that has had this many messages dropped within a minute is disconnected. */
  floodDrops: number;
  maxConnections: number;
  maxConnectionsPerIp: number;
  /** Failed CONNECTs one address may make per minute before its next ones are refused unread. */
  authFailuresPerMinute: number;
  /** Subscriptions one client may hold. */
  maxSubscriptions: number;
  /** How long a socket may stay open before its CONNECT arrives. */
  connectTimeoutMs: number;
};

/** What one device may add to InfluxDB's indexes (ingest/), and the size of what is written. */
export type StorageLimits = {
  /** Encoded line-protocol bytes of one point; a message with a larger one is refused before its PUBACK. */
  maxPointBytes: number;
  /** Distinct metric names in all, and new ones a single device may introduce. */
  maxMetricNames: number;
  maxDeviceMetricNames: number;
  /** Distinct values per label tag (model, firmware, …) in all, and new ones a single device may introduce per tag. */
  maxLabelValues: number;
  maxDeviceLabelValues: number;
};

export type ExternalBrokerConfig = {
  url: string | undefined;
  username: string | undefined;
  password: string | undefined;
  group: string;
  clientId: string | undefined;
};

export type Config = {
  mqtt: {
    host: string;
    /** The plain listener's port; undefined when plain MQTT is switched off. */
    port: number | undefined;
    /** The TLS listener's port, used when tls is configured. */
    tlsPort: number;
    wsPort: number | undefined;
    deviceSecret: string | undefined;
    maxPayloadBytes: number;
    limits: BrokerLimits;
    /** FIELDQ_REDIS_URL: the Redis several brokers share state through; undefined: state in memory. */
    redisUrl: string | undefined;
  };
  http: {
    host: string;
    port: number;
    /** FIELDQ_API_TOKENS: token → who holds it. */
    tokens: ReadonlyMap<string, TokenHolder>;
    /** The hashed tokens `fieldq token add` writes (api/token-book.ts). */
    tokensFile: string;
    /** Requests per second per token (or per address without one), and the burst above it. */
    rate: number;
    burst: number;
    maxBodyBytes: number;
  };
  tls: TlsConfig | undefined;
  influx: InfluxConfig;
  ingest: {
    dataDir: string;
    /** A JSON file of fingerprint rules (docs/fingerprint-rules.example.json); none: kind + model + code. */
    fingerprintRules: string | undefined;
    journalMaxBytes: number;
    batchPoints: number;
    /** Bytes of line protocol per InfluxDB write, well under InfluxDB's max-body-size (25 MB by default). */
    batchBytes: number;
    flushIntervalMs: number;
    /** How long written hours wait before their rollups are recomputed (rollup/runner.ts). */
    rollupIntervalMs: number;
    /** A device's device_state point is rewritten for a report at most this often (0: every message). */
    deviceStateEveryMs: number;
    clockSkewFutureMs: number;
    clockSkewPastMs: number;
    limits: StorageLimits;
    /** `fieldq ingest`: the external broker to consume from (FIELDQ_INGEST_BROKER_URL, or --broker). */
    externalBroker: ExternalBrokerConfig;
  };
  log: { level: Env["FIELDQ_LOG_LEVEL"]; format: "pretty" | "json" };
  alerts: {
    /** FIELDQ_ALERTING: this broker process runs the alert engine (one of several brokers should; docs/scaling.md). */
    enabled: boolean;
    /** A rules file (alerts/rules-file.ts); undefined: the default rules. */
    rulesFile: string | undefined;
    intervalMs: number;
    webhook: { url: string; secret: string } | undefined;
    /** The service account that may subscribe to fieldq/alerts/# on fieldq's broker. */
    mqtt: { username: string; password: string } | undefined;
    publicUrl: string | undefined;
  };
  promises: { file: string | undefined };
  commands: {
    /** A command not delivered within this long expires. */
    ttlMs: number;
    /** Commands published per second at most. */
    rate: number;
  };
  analytics: {
    /** Device-hours the fixing firmware must run without recurrence before an issue closes as effective. */
    verifyDeviceHours: number;
    /** The regression scan runs after each rollup recompute and at least this often (rollup/regression-runner.ts). */
    regressionIntervalMs: number;
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
  if ((e.FIELDQ_TLS_CERT === undefined) !== (e.FIELDQ_TLS_KEY === undefined)) {
    return { ok: false, problems: ["FIELDQ_TLS_CERT and FIELDQ_TLS_KEY: set both or neither"] };
  }
  const tls =
    e.FIELDQ_TLS_CERT !== undefined && e.FIELDQ_TLS_KEY !== undefined
      ? { certPath: e.FIELDQ_TLS_CERT, keyPath: e.FIELDQ_TLS_KEY }
      : undefined;
  if ((e.FIELDQ_WEBHOOK_URL === undefined) !== (e.FIELDQ_WEBHOOK_SECRET === undefined)) {
    return { ok: false, problems: ["FIELDQ_WEBHOOK_URL and FIELDQ_WEBHOOK_SECRET: set both or neither"] };
  }
  if ((e.FIELDQ_ALERT_MQTT_USERNAME === undefined) !== (e.FIELDQ_ALERT_MQTT_PASSWORD === undefined)) {
    return {
      ok: false,
      problems: ["FIELDQ_ALERT_MQTT_USERNAME and FIELDQ_ALERT_MQTT_PASSWORD: set both or neither"],
    };
  }
  if (!e.FIELDQ_MQTT_PLAIN && tls === undefined && e.FIELDQ_MQTT_WS_PORT === undefined) {
    return {
      ok: false,
      problems: ["FIELDQ_MQTT_PLAIN: plain MQTT is off, but neither TLS nor a WebSocket port is configured"],
    };
  }
  return {
    ok: true,
    config: {
      mqtt: {
        host: e.FIELDQ_MQTT_HOST,
        port: e.FIELDQ_MQTT_PLAIN ? e.FIELDQ_MQTT_PORT : undefined,
        tlsPort: e.FIELDQ_MQTTS_PORT,
        wsPort: e.FIELDQ_MQTT_WS_PORT,
        deviceSecret: e.FIELDQ_DEVICE_SECRET,
        maxPayloadBytes: e.FIELDQ_MAX_PAYLOAD_BYTES,
        limits: {
          deviceRate: e.FIELDQ_DEVICE_RATE,
          deviceBurst: e.FIELDQ_DEVICE_BURST,
          floodDrops: e.FIELDQ_FLOOD_DROPS,
          maxConnections: e.FIELDQ_MAX_CONNECTIONS,
          maxConnectionsPerIp: e.FIELDQ_MAX_CONNECTIONS_PER_IP,
          authFailuresPerMinute: e.FIELDQ_AUTH_FAILURES_PER_MINUTE,
          maxSubscriptions: e.FIELDQ_MAX_SUBSCRIPTIONS,
          connectTimeoutMs: e.FIELDQ_CONNECT_TIMEOUT,
        },
        redisUrl: e.FIELDQ_REDIS_URL,
      },
      http: {
        host: e.FIELDQ_HTTP_HOST,
        port: e.FIELDQ_HTTP_PORT,
        tokens: e.FIELDQ_API_TOKENS,
        tokensFile: e.FIELDQ_TOKENS_FILE,
        rate: e.FIELDQ_API_RATE,
        burst: e.FIELDQ_API_BURST,
        maxBodyBytes: e.FIELDQ_API_MAX_BODY_BYTES,
      },
      tls,
      influx,
      ingest: {
        dataDir: e.FIELDQ_DATA_DIR,
        fingerprintRules: e.FIELDQ_FINGERPRINT_RULES,
        journalMaxBytes: e.FIELDQ_JOURNAL_MAX_BYTES,
        batchPoints: e.FIELDQ_BATCH_POINTS,
        batchBytes: e.FIELDQ_BATCH_BYTES,
        flushIntervalMs: e.FIELDQ_FLUSH_INTERVAL,
        rollupIntervalMs: e.FIELDQ_ROLLUP_INTERVAL,
        deviceStateEveryMs: e.FIELDQ_DEVICE_STATE_EVERY,
        clockSkewFutureMs: e.FIELDQ_CLOCK_SKEW_FUTURE,
        clockSkewPastMs: e.FIELDQ_CLOCK_SKEW_PAST,
        limits: {
          maxPointBytes: e.FIELDQ_MAX_POINT_BYTES,
          maxMetricNames: e.FIELDQ_MAX_METRIC_NAMES,
          maxDeviceMetricNames: e.FIELDQ_MAX_DEVICE_METRIC_NAMES,
          maxLabelValues: e.FIELDQ_MAX_LABEL_VALUES,
          maxDeviceLabelValues: e.FIELDQ_MAX_DEVICE_LABEL_VALUES,
        },
        externalBroker: {
          url: e.FIELDQ_INGEST_BROKER_URL,
          username: e.FIELDQ_INGEST_BROKER_USERNAME,
          password: e.FIELDQ_INGEST_BROKER_PASSWORD,
          group: e.FIELDQ_INGEST_SHARE_GROUP,
          clientId: e.FIELDQ_INGEST_CLIENT_ID,
        },
      },
      log: {
        level: e.FIELDQ_LOG_LEVEL,
        format: e.FIELDQ_LOG_FORMAT ?? (process.stdout.isTTY ? "pretty" : "json"),
      },
      alerts: {
        enabled: e.FIELDQ_ALERTING,
        rulesFile: e.FIELDQ_ALERT_RULES,
        intervalMs: e.FIELDQ_ALERT_INTERVAL,
        webhook:
          e.FIELDQ_WEBHOOK_URL !== undefined && e.FIELDQ_WEBHOOK_SECRET !== undefined
            ? { url: e.FIELDQ_WEBHOOK_URL, secret: e.FIELDQ_WEBHOOK_SECRET }
            : undefined,
        mqtt:
          e.FIELDQ_ALERT_MQTT_USERNAME !== undefined && e.FIELDQ_ALERT_MQTT_PASSWORD !== undefined
            ? { username: e.FIELDQ_ALERT_MQTT_USERNAME, password: e.FIELDQ_ALERT_MQTT_PASSWORD }
            : undefined,
        publicUrl: e.FIELDQ_PUBLIC_URL,
      },
      promises: { file: e.FIELDQ_PROMISES },
      commands: { ttlMs: e.FIELDQ_COMMAND_TTL, rate: e.FIELDQ_COMMAND_RATE },
      analytics: {
        verifyDeviceHours: e.FIELDQ_VERIFY_DEVICE_HOURS,
        regressionIntervalMs: e.FIELDQ_REGRESSION_INTERVAL,
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
