import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { InfluxDB } from "influx";
import mqtt from "mqtt";
import { type BrokerLimits, type Config, loadConfig } from "../../config/env.js";
import { deviceKey } from "../../contract/device-key.js";
import { silentLogger } from "../../observe/logger.js";
import { createMetrics, type Metrics } from "../../observe/metrics.js";
import { type IngestBrokerHandle, startIngestBroker } from "../../stack/start-stack.js";
import { createInflux } from "../../storage/influx.js";
import { testDatabase } from "./influx.js";
import { startTcpProxy } from "./tcp-proxy.js";

export const TEST_SECRET = "test-secret-0123456789abcdef";

/** A device's MQTT options with its own key (MQTT 3.1.1, no reconnect), and what the test adds. */
export const deviceOptions = (deviceId: string, options: mqtt.IClientOptions = {}): mqtt.IClientOptions => ({
  clientId: deviceId,
  username: deviceId,
  password: deviceKey(TEST_SECRET, deviceId),
  protocolVersion: 4,
  reconnectPeriod: 0,
  connectTimeout: 5_000,
  ...options,
});

/** The broker's limits for a test that starts startBroker by itself: the defaults, for 100 connections. */
export const SMALL_BROKER_LIMITS: BrokerLimits = {
  deviceRate: 20,
  deviceBurst: 200,
  floodDrops: 2000,
  maxConnections: 100,
  maxConnectionsPerIp: 100,
  authFailuresPerMinute: 100,
  maxSubscriptions: 16,
  connectTimeoutMs: 10_000,
};

/** A test's config: its own database, data folder and free ports; a short flush interval. */
export function testConfig(
  influx: Config["influx"],
  dataDir: string,
  overrides: NodeJS.ProcessEnv = {},
): Config {
  const result = loadConfig({
    FIELDQ_MQTT_HOST: "127.0.0.1",
    FIELDQ_MQTT_PORT: "0",
    FIELDQ_HTTP_HOST: "127.0.0.1",
    FIELDQ_HTTP_PORT: "0",
    FIELDQ_INFLUX_URL: influx.url,
    FIELDQ_INFLUX_DB: influx.database,
    FIELDQ_DEVICE_SECRET: TEST_SECRET,
    FIELDQ_API_TOKENS: "viewer:viewer-token-1,operator:operator-token-1,admin:admin-token-1",
    FIELDQ_DATA_DIR: dataDir,
    // Inside the test's own folder: no test reads a tokens file of the repository's.
    FIELDQ_TOKENS_FILE: join(dataDir, "tokens.json"),
    FIELDQ_FLUSH_INTERVAL: "50ms",
    FIELDQ_ROLLUP_INTERVAL: "50ms",
    FIELDQ_LOG_FORMAT: "json",
    FIELDQ_LOG_LEVEL: "silent",
    ...overrides,
  });
  if (!result.ok) throw new Error(result.problems.join("; "));
  return result.config;
}

/**
 * Broker + ingest on port 0 against a database of the test's own, reached through a proxy the test can
 * take down. restart() stops the stack and starts a new one on the same journal.
 */
export async function startTestStack(label: string, overrides: NodeJS.ProcessEnv = {}) {
  const db = await testDatabase(label);
  const proxy = await startTcpProxy(new URL(db.url));
  const dataDir = await mkdtemp(join(tmpdir(), `fieldq-${label}-`));
  const config = testConfig({ ...db, url: proxy.url }, dataDir, overrides);
  let metrics: Metrics = createMetrics();
  let stack: IngestBrokerHandle = await startIngestBroker(config, { logger: silentLogger, metrics });
  let running = true;
  const influx: InfluxDB = createInflux({ ...db, url: db.url });
  const clients = new Set<mqtt.MqttClient>();

  return {
    config,
    db,
    proxy,
    influx,
    get stack() {
      return stack;
    },
    get metrics() {
      return metrics;
    },
    get mqttUrl() {
      return `mqtt://127.0.0.1:${stack.mqttPort}`;
    },
    /** Connects as a device with its own key unless told otherwise. */
    async connect(deviceId: string, options: mqtt.IClientOptions = {}) {
      const client = await mqtt.connectAsync(
        `mqtt://127.0.0.1:${stack.mqttPort}`,
        deviceOptions(deviceId, options),
      );
      clients.add(client);
      return client;
    },
    /** Stops the stack and starts a new one on the same journal; a failed start leaves none running. */
    async restart(extra: NodeJS.ProcessEnv = {}) {
      if (running) await stack.close();
      running = false;
      metrics = createMetrics();
      stack = await startIngestBroker(
        testConfig({ ...db, url: proxy.url }, dataDir, { ...overrides, ...extra }),
        {
          logger: silentLogger,
          metrics,
        },
      );
      running = true;
    },
    /** Waits until the journal has drained into InfluxDB. */
    async drained(timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (stack.journal.backlog.entries > 0) {
        if (Date.now() > deadline)
          throw new Error(`journal still holds ${stack.journal.backlog.entries} entries`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async query<T = Record<string, unknown>>(q: string): Promise<T[]> {
      // node-influx returns an array with extra properties; tests compare plain rows.
      return [...(await influx.query<T>(q))] as unknown as T[];
    },
    async close() {
      await Promise.all([...clients].map((c) => c.endAsync(true).catch(() => {})));
      if (running) await stack.close();
      await proxy.close();
      await db.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
export type TestStack = Awaited<ReturnType<typeof startTestStack>>;
