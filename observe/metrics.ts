import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** One registry per running stack, so several stacks can live in one test process. */
export function createMetrics() {
  const registry = new Registry();
  const registers = [registry];
  return {
    registry,
    messagesAccepted: new Counter({
      name: "fieldq_messages_accepted_total",
      help: "Device messages journaled, by channel",
      labelNames: ["channel"] as const,
      registers,
    }),
    messagesRefused: new Counter({
      name: "fieldq_messages_refused_total",
      help: "Device messages refused, by reason",
      labelNames: ["reason"] as const,
      registers,
    }),
    clockSkewed: new Counter({
      name: "fieldq_clock_skewed_total",
      help: "Messages whose device time was too far off and were stored at receive time",
      registers,
    }),
    authFailures: new Counter({
      name: "fieldq_auth_failures_total",
      help: "Refused MQTT connects and publishes/subscribes, by reason",
      labelNames: ["reason"] as const,
      registers,
    }),
    connectedDevices: new Gauge({
      name: "fieldq_connected_devices",
      help: "Devices connected now",
      registers,
    }),
    journalBacklogEntries: new Gauge({
      name: "fieldq_journal_backlog_entries",
      help: "Journal entries not yet in InfluxDB",
      registers,
    }),
    journalBacklogBytes: new Gauge({
      name: "fieldq_journal_backlog_bytes",
      help: "Bytes of journal entries not yet in InfluxDB",
      registers,
    }),
    influxWriteSeconds: new Histogram({
      name: "fieldq_influx_write_seconds",
      help: "InfluxDB write latency per batch",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    influxWriteFailures: new Counter({
      name: "fieldq_influx_write_failures_total",
      help: "Failed InfluxDB writes, by kind (retryable: will be retried; refused: points dropped as data-quality records)",
      labelNames: ["kind"] as const,
      registers,
    }),
    pointsWritten: new Counter({
      name: "fieldq_points_written_total",
      help: "Points written to InfluxDB",
      registers,
    }),
    pointsSetAside: new Counter({
      name: "fieldq_points_set_aside_total",
      help: "Points of acknowledged messages that InfluxDB would not take, set aside (docs/storage.md), by reason; should stay 0",
      labelNames: ["reason"] as const,
      registers,
    }),
    messagesThrottled: new Counter({
      name: "fieldq_messages_throttled_total",
      help: "Device messages over their device's rate: QoS 0 dropped, QoS 1 held back before its PUBACK",
      labelNames: ["qos"] as const,
      registers,
    }),
    floodDisconnects: new Counter({
      name: "fieldq_flood_disconnects_total",
      help: "Devices disconnected for flooding past their rate",
      registers,
    }),
    connectionsRefused: new Counter({
      name: "fieldq_connections_refused_total",
      help: "Connections closed before CONNECT was read, by reason (per_ip, global, auth_throttled, connect_timeout)",
      labelNames: ["reason"] as const,
      registers,
    }),
    subscriptionsRefused: new Counter({
      name: "fieldq_subscriptions_refused_total",
      help: "Subscriptions refused, by reason (acl, limit, invalid)",
      labelNames: ["reason"] as const,
      registers,
    }),
    apiRateLimited: new Counter({
      name: "fieldq_api_rate_limited_total",
      help: "API requests answered 429",
      registers,
    }),
    rollupHours: new Counter({
      name: "fieldq_rollup_hours_total",
      help: "Hours whose rollups were recomputed from raw points",
      registers,
    }),
    rollupDirtyHours: new Gauge({
      name: "fieldq_rollup_dirty_hours",
      help: "Hours with data written since their rollups were last computed",
      registers,
    }),
  };
}
export type Metrics = ReturnType<typeof createMetrics>;
