import { readFile } from "node:fs/promises";
import { createSecureContext } from "node:tls";
import { type Alerting, startAlerting } from "../alerts/start-alerting.js";
import { type ApiHandle, startApi } from "../api/start-api.js";
import { openTokenBook, type TokenBook } from "../api/token-book.js";
import type { ListenerPorts } from "../broker/listeners.js";
import { memoryState } from "../broker/memory-state.js";
import { openSharedState, type SharedState } from "../broker/shared-state.js";
import { type BrokerHandle, startBroker } from "../broker/start-broker.js";
import { type CommandDispatch, startCommandDispatch } from "../commands/dispatch.js";
import type { Config, TlsConfig } from "../config/env.js";
import { mountDashboard } from "../dashboard/mount.js";
import type { Journal } from "../ingest/journal.js";
import type { JournalWriter } from "../ingest/writer.js";
import type { Logger } from "../observe/logger.js";
import { createMetrics, type Metrics } from "../observe/metrics.js";
import type { RegressionRunner } from "../rollup/regression-runner.js";
import type { RollupRunner } from "../rollup/runner.js";
import { createReadServices, type ReadServices } from "../services/read-services.js";
import { createInflux, createPointWriter, ensureSchema } from "../storage/influx.js";
import { startPipeline } from "./start-pipeline.js";

// Composes the parts into one process. fieldq's broker runs with the durable pipeline (start-pipeline.ts): a
// message is made durable inside the broker's authorizePublish, before its PUBACK. The API can run here or on
// its own.

/** tls: the PEM files already read (startFieldq reads them once for the broker and the API). */
export type StackDeps = { logger: Logger; metrics?: Metrics; tls?: TlsPem | undefined };

export type IngestBrokerHandle = {
  /** The first listening MQTT port: plain MQTT when it is on. */
  mqttPort: number;
  mqttPorts: ListenerPorts;
  journal: Journal;
  broker: BrokerHandle;
  writer: JournalWriter;
  rollups: RollupRunner;
  /** Scans for regressions after every rollup recompute; `poke()` resolves once a pass begun after it is done. */
  regressions: RegressionRunner;
  /** Settles once the ingest has tried to create the schema: true when it exists. */
  schemaReady: Promise<boolean>;
  close(): Promise<void>;
};

/** The certificate and key, read once at start; a file that cannot be read stops the start. */
export type TlsPem = { cert: Buffer; key: Buffer };

async function readTls(tls: TlsConfig | undefined): Promise<TlsPem | undefined> {
  if (tls === undefined) return undefined;
  const read = (variable: string, path: string) =>
    readFile(path).catch((error: NodeJS.ErrnoException) => {
      throw new Error(`${variable}: cannot read ${path} (${error.code ?? error.message})`);
    });
  const pem = {
    cert: await read("FIELDQ_TLS_CERT", tls.certPath),
    key: await read("FIELDQ_TLS_KEY", tls.keyPath),
  };
  try {
    createSecureContext(pem);
  } catch (error) {
    throw new Error(
      `FIELDQ_TLS_CERT, FIELDQ_TLS_KEY: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  return pem;
}

export async function startIngestBroker(config: Config, deps: StackDeps): Promise<IngestBrokerHandle> {
  const { logger } = deps;
  const metrics = deps.metrics ?? createMetrics();
  if (!config.mqtt.deviceSecret)
    throw new Error("FIELDQ_DEVICE_SECRET is not set: devices' keys derive from it");
  const tls = deps.tls ?? (await readTls(config.tls));
  const pipeline = await startPipeline(config, { logger, metrics });
  const { ingest, journal, writer, rollups, regressions, schemaReady } = pipeline;
  let broker: BrokerHandle;
  let shared: SharedState | undefined;
  try {
    // Several brokers share sessions, subscriptions, retained messages and routing through Redis.
    if (config.mqtt.redisUrl !== undefined)
      shared = await openSharedState(config.mqtt.redisUrl, logger.child({ part: "shared-state" }));
    broker = await startBroker({
      listen: {
        host: config.mqtt.host,
        port: config.mqtt.port,
        tls: tls && { ...tls, port: config.mqtt.tlsPort },
        wsPort: config.mqtt.wsPort,
        handshakeTimeoutMs: config.mqtt.limits.connectTimeoutMs,
        // Room for the largest packet the broker takes (payload and headers) and another beside it.
        maxFrameBytes: 2 * config.mqtt.maxPayloadBytes + 64 * 1024,
        logger: logger.child({ part: "broker" }),
      },
      limits: config.mqtt.limits,
      deviceSecret: config.mqtt.deviceSecret,
      maxPayloadBytes: config.mqtt.maxPayloadBytes,
      logger: logger.child({ part: "broker" }),
      metrics,
      receive: ingest.receive,
      presence: ingest.presence,
      // The account services subscribe to fieldq/alerts/# with (FIELDQ_ALERT_MQTT_USERNAME / _PASSWORD).
      alertSubscriber: config.alerts.mqtt,
      state: shared ?? memoryState(),
    });
  } catch (error) {
    await shared?.close();
    await pipeline.close(0);
    throw error;
  }
  return {
    mqttPort: broker.port,
    mqttPorts: broker.ports,
    journal,
    broker,
    writer,
    rollups,
    regressions,
    schemaReady,
    async close() {
      await broker.close();
      await shared?.close();
      await pipeline.close();
    },
  };
}

export type FieldqParts = { broker: boolean; api: boolean };

/** How long the API waits for its warm-up before it listens anyway. */
export const WARM_UP_LIMIT_MS = 20_000;

/** What the promise gives, or false once ms have passed. */
const within = <T>(ms: number, promise: Promise<T>): Promise<T | false> =>
  Promise.race([promise, new Promise<false>((resolve) => setTimeout(resolve, ms, false).unref())]);

export type FieldqHandle = {
  mqttPort?: number;
  mqttPorts?: ListenerPorts;
  apiUrl?: string;
  close(): Promise<void>;
};

/** The whole monitor in one process (`npm start`), or one part of it. */
export async function startFieldq(
  config: Config,
  deps: StackDeps,
  parts: FieldqParts,
): Promise<FieldqHandle> {
  const metrics = deps.metrics ?? createMetrics();
  const tls = await readTls(config.tls);
  const ingestBroker = parts.broker ? await startIngestBroker(config, { ...deps, metrics, tls }) : undefined;
  const influx = createInflux(config.influx);
  if (!ingestBroker) {
    // On its own the API may start before any ingest has created the database.
    await ensureSchema(influx, config.influx).catch((error: unknown) =>
      deps.logger.warn(
        { err: error },
        "InfluxDB schema not ensured; the API answers 503 until InfluxDB is reachable",
      ),
    );
  }
  // In one process with the ingest, the read side warms once the ingest has made the schema.
  if (ingestBroker) await within(WARM_UP_LIMIT_MS, ingestBroker.schemaReady);
  // The API reads through these; the broker's process judges alerts and sends commands through them.
  let read: ReadServices;
  try {
    read = createReadServices(influx, {
      write: createPointWriter(config.influx),
      silence: {
        factor: config.analytics.silentFactor,
        expectedIntervals: config.analytics.expectedIntervals,
      },
      logger: deps.logger.child({ part: parts.api ? "api" : "read" }),
      files: { promises: config.promises.file },
      commands: { ttlMs: config.commands.ttlMs },
    });
    const promises = await read.promises.load();
    if (!promises.ok) {
      read.close();
      throw new Error(`FIELDQ_PROMISES: ${promises.error}`);
    }
  } catch (error) {
    await ingestBroker?.close();
    throw error;
  }
  // Commands and alerts leave from the one process that holds the broker and the data folder.
  let dispatch: CommandDispatch | undefined;
  let alerting: Alerting | undefined;
  const closeOutbound = async () => {
    await alerting?.close();
    await dispatch?.close();
  };
  if (ingestBroker) {
    try {
      dispatch = startCommandDispatch({
        broker: ingestBroker.broker,
        commands: read.commands,
        logger: deps.logger.child({ part: "commands" }),
        rate: config.commands.rate,
      });
      // With several brokers (docs/scaling.md) one runs the alert engine: each would raise its own alerts.
      if (config.alerts.enabled)
        alerting = await startAlerting({
          config: config.alerts,
          dataDir: config.ingest.dataDir,
          read,
          broker: ingestBroker.broker,
          logger: deps.logger.child({ part: "alerts" }),
        });
    } catch (error) {
      await closeOutbound();
      read.close();
      await ingestBroker.close();
      throw error;
    }
  }
  let api: ApiHandle | undefined;
  let tokens: TokenBook | undefined;
  if (parts.api) {
    // One book for the API and the dashboard: FIELDQ_API_TOKENS and the tokens file, re-read when it changes.
    const book = openTokenBook({
      environment: config.http.tokens,
      file: config.http.tokensFile,
      logger: deps.logger.child({ part: "tokens" }),
    });
    if (!book.ok) {
      await closeOutbound();
      read.close();
      await ingestBroker?.close();
      throw new Error(`FIELDQ_TOKENS_FILE: ${book.error.map((e) => e.text).join("; ")}`);
    }
    const accepted = book.value;
    tokens = accepted;
    if (accepted.entries().length === 0) {
      deps.logger.warn(
        { file: config.http.tokensFile },
        "no API tokens: FIELDQ_API_TOKENS is empty and the tokens file has none, so every API route but /api/v1/health answers 401 (npm run fieldq -- token add --role admin --name <you>)",
      );
    }
    // Listen once the read side is warm, so the first requests find the directory and the month's rollups in
    // memory; a warm-up that takes longer (a very large fleet, a slow InfluxDB) goes on behind the listener.
    const warm = await within(
      WARM_UP_LIMIT_MS,
      read.warmed.then(() => true),
    );
    if (!warm) deps.logger.warn({ limitMs: WARM_UP_LIMIT_MS }, "API listening before its warm-up finished");
    try {
      const limits = {
        rate: config.http.rate,
        burst: config.http.burst,
        maxBodyBytes: config.http.maxBodyBytes,
      };
      api = await startApi({
        host: config.http.host,
        port: config.http.port,
        tls,
        devices: read.devices,
        faults: read.faults,
        issues: read.issues,
        health: read.health,
        firmware: read.firmware,
        commands: read.commands,
        alerts: read.alerts,
        promises: read.promises,
        feedback: read.feedback,
        review: read.review,
        tokens: accepted,
        limits,
        extend: (app) =>
          mountDashboard(app, {
            tokens: accepted,
            limits,
            logger: deps.logger.child({ part: "dashboard" }),
          }),
        logger: deps.logger.child({ part: "api" }),
        metrics,
        status: ingestBroker
          ? () => ({
              journalBacklog: ingestBroker.journal.backlog.entries,
              connectedDevices: ingestBroker.broker.connectedDevices(),
            })
          : undefined,
      });
    } catch (error) {
      accepted.close();
      await closeOutbound();
      read.close();
      await ingestBroker?.close();
      throw error;
    }
  }
  return {
    ...(ingestBroker ? { mqttPort: ingestBroker.mqttPort, mqttPorts: ingestBroker.mqttPorts } : {}),
    ...(api ? { apiUrl: api.url } : {}),
    async close() {
      await api?.close();
      tokens?.close();
      await closeOutbound();
      read.close();
      await ingestBroker?.close();
    },
  };
}
