import { access } from "node:fs/promises";
import { resolve } from "node:path";
import {
  DEFAULT_FINGERPRINT_RULES,
  type FingerprintRules,
  loadFingerprintRules,
} from "../analytics/fingerprint.js";
import type { Config } from "../config/env.js";
import { startDeviceStateBackfill } from "../ingest/device-state-backfill.js";
import { createIngest, type Ingest } from "../ingest/ingest.js";
import { Journal } from "../ingest/journal.js";
import { JournalWriter } from "../ingest/writer.js";
import type { Logger } from "../observe/logger.js";
import type { Metrics } from "../observe/metrics.js";
import { hoursInOlderFormat } from "../rollup/rebuild.js";
import { RegressionRunner } from "../rollup/regression-runner.js";
import { createRollups } from "../rollup/rollups.js";
import { RollupRunner } from "../rollup/runner.js";
import { SettleRunner } from "../rollup/settle-issues.js";
import {
  createInflux,
  createPointWriter,
  DatabaseMissing,
  ensureSchema,
  type PointWriter,
} from "../storage/influx.js";

// The durable pipeline behind whatever receives the devices' messages (fieldq's own broker, or a shared
// subscription on an external one): ingest → journal (fsync) → writer → InfluxDB, with the rollups, the
// settling of issues and the regression scan that follow the data.

export type Pipeline = {
  ingest: Ingest;
  journal: Journal;
  writer: JournalWriter;
  rollups: RollupRunner;
  /** Scans for regressions after every rollup recompute; `poke()` resolves once a pass begun after it is done. */
  regressions: RegressionRunner;
  /** Settles once the ingest has tried to create the schema: true when it exists. */
  schemaReady: Promise<boolean>;
  /** Stops the background work, drains the writer for up to flushTimeoutMs (5 s), and closes the journal. */
  close(flushTimeoutMs?: number): Promise<void>;
};

/** Writes through to InfluxDB, creating the schema first and again whenever the database has gone. */
export function schemaAwareWriter(config: Config["influx"], logger: Logger): PointWriter {
  const influx = createInflux(config);
  const write = createPointWriter(config);
  let ready: Promise<void> | undefined;
  return async (points) => {
    ready ??= ensureSchema(influx, config).then(() =>
      logger.info({ database: config.database }, "InfluxDB schema ready"),
    );
    try {
      await ready;
      await write(points);
    } catch (error) {
      ready = undefined;
      if (error instanceof DatabaseMissing) logger.warn("InfluxDB database is missing; creating it again");
      throw error;
    }
  };
}

/** The configured fingerprint rules; a configured file that is missing or broken stops the start. */
async function fingerprintRules(path: string | undefined): Promise<FingerprintRules> {
  if (path === undefined) return DEFAULT_FINGERPRINT_RULES;
  await access(path).catch(() => {
    throw new Error(`FIELDQ_FINGERPRINT_RULES: ${path} does not exist`);
  });
  const loaded = await loadFingerprintRules(path);
  if (!loaded.ok) throw new Error(`FIELDQ_FINGERPRINT_RULES: ${loaded.error.message}`);
  return loaded.value;
}

export async function startPipeline(
  config: Config,
  deps: { logger: Logger; metrics: Metrics },
): Promise<Pipeline> {
  const { logger, metrics } = deps;
  const rules = await fingerprintRules(config.ingest.fingerprintRules);
  const journal = await Journal.open({
    dir: resolve(config.ingest.dataDir, "journal"),
    maxBytes: config.ingest.journalMaxBytes,
    logger: logger.child({ part: "journal" }),
    onBacklog: (backlog) => {
      metrics.journalBacklogEntries.set(backlog.entries);
      metrics.journalBacklogBytes.set(backlog.bytes);
    },
  });
  const ingest = await createIngest({
    fingerprintRules: rules,
    journal,
    logger: logger.child({ part: "ingest" }),
    metrics,
    maxPayloadBytes: config.mqtt.maxPayloadBytes,
    clockSkewFutureMs: config.ingest.clockSkewFutureMs,
    clockSkewPastMs: config.ingest.clockSkewPastMs,
    limits: config.ingest.limits,
    deviceStateEveryMs: config.ingest.deviceStateEveryMs,
  });
  const schemaWriter = schemaAwareWriter(config.influx, logger.child({ part: "writer" }));
  const writer = new JournalWriter({
    journal,
    write: schemaWriter,
    logger: logger.child({ part: "writer" }),
    metrics,
    batchPoints: config.ingest.batchPoints,
    batchBytes: config.ingest.batchBytes,
    flushIntervalMs: config.ingest.flushIntervalMs,
    setAsideDir: config.ingest.dataDir,
  });
  writer.start();
  // Issues that rely on a fix are settled from the rollups, after every recompute and once a minute.
  const settler = new SettleRunner({
    influx: createInflux(config.influx),
    write: createPointWriter(config.influx, 60_000),
    requiredHours: config.analytics.verifyDeviceHours,
    logger: logger.child({ part: "settle" }),
    intervalMs: 60_000,
  });
  // Regressions are looked for in the data once every hour before its newest one is rolled up (not during a
  // backfill), after every recompute and every few minutes; the rollup runner does not wait for a scan.
  const regressions = new RegressionRunner({
    influx: createInflux(config.influx),
    write: createPointWriter(config.influx, 60_000),
    pending: () => journal.dirty().keys(),
    logger: logger.child({ part: "regressions" }),
    intervalMs: config.analytics.regressionIntervalMs,
  });
  const rollups = new RollupRunner({
    source: journal,
    rollups: createRollups(createInflux(config.influx), createPointWriter(config.influx, 60_000)),
    logger: logger.child({ part: "rollup" }),
    metrics,
    intervalMs: config.ingest.rollupIntervalMs,
    after: () => {
      void regressions.poke();
      return settler.poke();
    },
  });
  rollups.start();
  // Create the schema now so the API can answer at once; if InfluxDB is away the writer retries it.
  const schemaReady = schemaWriter([]).then(
    () => true,
    (error: unknown) => {
      logger.warn({ err: error }, "InfluxDB not reachable yet; the journal keeps messages");
      return false;
    },
  );
  // What reads the stored data starts once the schema was tried, so a first start does not begin with
  // "retention policy not found"; each retries on its own while InfluxDB is away.
  let closing = false;
  let backfill: { stop(): Promise<void> } | undefined;
  const background = schemaReady.then(() => {
    if (closing) return;
    backfill = startDeviceStateBackfill({
      ingest,
      journal,
      influx: createInflux(config.influx),
      logger: logger.child({ part: "device-state-backfill" }),
    });
    settler.start();
    regressions.start();
    // Rollups of an older format (before device_cohort) are redone by the runner from durable journal marks.
    hoursInOlderFormat(createInflux(config.influx))
      .then(async (hours) => {
        if (hours.length === 0) return;
        await journal.commit([], [], Date.now(), hours);
        logger.info({ hours: hours.length }, "rollups of an older format marked for recompute");
      })
      .catch((error: unknown) =>
        logger.warn({ err: error }, "could not look for rollups of an older format"),
      );
  });
  return {
    ingest,
    journal,
    writer,
    rollups,
    regressions,
    schemaReady,
    async close(flushTimeoutMs) {
      closing = true;
      await background;
      await backfill?.stop();
      await settler.stop();
      await regressions.stop();
      await writer.stop(flushTimeoutMs);
      await rollups.stop();
      const left = journal.backlog;
      if (left.entries > 0) logger.info(left, "journal keeps what InfluxDB has not taken yet");
      await journal.close();
    },
  };
}
