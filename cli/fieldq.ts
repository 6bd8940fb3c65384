import { join } from "node:path";
import { parseArgs } from "node:util";
import type { ListenerPorts } from "../broker/listeners.js";
import { type Config, loadConfig, loadDotEnv } from "../config/env.js";
import { deviceKey } from "../contract/device-key.js";
import { DAY_MS } from "../contract/time.js";
import { DEVICE_ID_PATTERN } from "../contract/topics.js";
import { type SimCommandEnv, simCommand } from "../device-sim/sim-command.js";
import { parseBrokerUrl } from "../ingest/external-consumer.js";
import { createLogger, type Logger } from "../observe/logger.js";
import { rebuildRollups } from "../rollup/rebuild.js";
import { startExternalIngest } from "../stack/start-external-ingest.js";
import { type FieldqParts, startFieldq } from "../stack/start-stack.js";
import { createInflux, createPointWriter } from "../storage/influx.js";
import { reportCommand } from "./report-command.js";
import { tokenCommand } from "./token-command.js";
import { webhookListenCommand } from "./webhook-listen-command.js";

// The fieldq command: a thin entry that loads config, starts parts, and closes them on SIGTERM.

const out = (line: string) => process.stdout.write(`${line}\n`);
const err = (line: string) => process.stderr.write(`${line}\n`);

const USAGE = `Usage: npm run fieldq -- <command> [options]   (npm start runs "start")

Commands:
  start [--sim N]       broker, ingest, API and dashboard in one process; --sim N also plays the home-demo scenario
                        scaled to N devices: its three days of history, then live
  broker                broker and ingest only (they always run together: a message is journaled before its PUBACK)
  ingest --broker <url> ingest only, behind an external MQTT 5 broker (ingest --help)
  api                   the HTTP API and the dashboard (at /) only, reading InfluxDB
  device-key <id>       print the MQTT password of a device (needs FIELDQ_DEVICE_SECRET)
  token add|list|revoke the API's named tokens, kept as hashes in FIELDQ_TOKENS_FILE (token --help)
  report --from --to    the management review as printable HTML, or CSV per table (report --help)
  webhook-listen        a local receiver for alert webhooks: checks signatures, prints alerts (webhook-listen --help)
  rollup [options]      recompute the analytics' rollups from the raw data (rollup --help)
  sim [options]         simulate a fleet from a scenario, live or as a backfill (sim --help);
                        sim scenarios lists the shipped ones, sim score <truth> scores a run
  help                  this text

Configuration comes from FIELDQ_* environment variables and ./.env; see .env.example.`;

function config(): Config | undefined {
  loadDotEnv();
  const result = loadConfig();
  if (result.ok) return result.config;
  err("fieldq: the configuration has problems:");
  for (const problem of result.problems) err(`  ${problem}`);
  return undefined;
}

/**
 * Where simulated devices connect on this machine: plain MQTT when it is on, else over TLS (trusting the
 * CA through NODE_EXTRA_CA_CERTS), else over WebSocket.
 */
function localBrokerUrl(ports: ListenerPorts, tls: boolean): string | undefined {
  if (ports.mqtt !== undefined) return `mqtt://127.0.0.1:${ports.mqtt}`;
  if (ports.mqtts !== undefined) return `mqtts://127.0.0.1:${ports.mqtts}`;
  if (ports.ws !== undefined) return `${tls ? "wss" : "ws"}://127.0.0.1:${ports.ws}/mqtt`;
  return undefined;
}

const LISTENER_NAMES: Record<keyof ListenerPorts, (tls: boolean) => string> = {
  mqtt: () => "MQTT",
  mqtts: () => "MQTT over TLS",
  ws: (tls) => (tls ? "MQTT over secure WebSocket" : "MQTT over WebSocket"),
};

function configuredPorts(cfg: Config): ListenerPorts {
  return {
    ...(cfg.mqtt.port !== undefined ? { mqtt: cfg.mqtt.port } : {}),
    ...(cfg.tls ? { mqtts: cfg.mqtt.tlsPort } : {}),
    ...(cfg.mqtt.wsPort !== undefined ? { ws: cfg.mqtt.wsPort } : {}),
  };
}

function simEnv(cfg: Config): SimCommandEnv {
  const mqttUrl = localBrokerUrl(configuredPorts(cfg), cfg.tls !== undefined);
  return {
    ...(cfg.mqtt.deviceSecret !== undefined ? { secret: cfg.mqtt.deviceSecret } : {}),
    ...(mqttUrl !== undefined ? { mqttUrl } : {}),
    clockSkewPastMs: cfg.ingest.clockSkewPastMs,
    clockSkewFutureMs: cfg.ingest.clockSkewFutureMs,
    vars: process.env,
  };
}

/** The simulated fleet connects from this host, a connection per device: the per-address cap must hold it. */
function withRoomForSim(cfg: Config, simDevices: number | undefined): Config {
  if (simDevices === undefined) return cfg;
  const limits = cfg.mqtt.limits;
  const perIp = Math.max(limits.maxConnectionsPerIp, simDevices + 10);
  const total = Math.max(limits.maxConnections, limits.maxConnections - limits.maxConnectionsPerIp + perIp);
  return {
    ...cfg,
    mqtt: { ...cfg.mqtt, limits: { ...limits, maxConnectionsPerIp: perIp, maxConnections: total } },
  };
}

async function serve(
  cfg: Config,
  logger: Logger,
  parts: FieldqParts,
  simDevices: number | undefined,
): Promise<number> {
  if (parts.broker && !cfg.mqtt.deviceSecret) {
    err("fieldq: FIELDQ_DEVICE_SECRET is not set: devices' keys derive from it (see .env.example)");
    return 2;
  }
  const stack = await startFieldq(withRoomForSim(cfg, simDevices), { logger }, parts);
  const tls = cfg.tls !== undefined;
  for (const [listener, port] of Object.entries(stack.mqttPorts ?? {}) as [keyof ListenerPorts, number][])
    logger.info({ listener, port }, `${LISTENER_NAMES[listener](tls)} listening on port ${port}`);
  if (stack.apiUrl !== undefined)
    logger.info({ url: stack.apiUrl }, `API listening on ${stack.apiUrl}/api/v1`);
  const sim = new AbortController();
  const simBroker = stack.mqttPorts && localBrokerUrl(stack.mqttPorts, tls);
  const simRun =
    simDevices !== undefined && simBroker !== undefined
      ? simCommand(
          // The demo's history is backfilled first, so faults and issues are there within its first minute.
          [
            "--devices",
            String(simDevices),
            "--mode",
            "backfill",
            "--follow",
            "--broker",
            simBroker,
            "--truth",
            join(cfg.ingest.dataDir, "fieldq-truth-home-demo.json"),
          ],
          simEnv(cfg),
          logger.child({ part: "sim" }),
          { out, err, signal: sim.signal },
        )
      : undefined;
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  logger.info("shutting down: no new connections, flushing the journal to InfluxDB");
  sim.abort();
  await simRun;
  await stack.close();
  logger.info("stopped");
  return 0;
}

const INGEST_USAGE = `Usage: npm run fieldq -- ingest --broker mqtt://host:1883

The durable ingest (journal, InfluxDB writer, rollups) behind an external MQTT 5 broker (Mosquitto, EMQX,
HiveMQ, VerneMQ) instead of fieldq's own. It takes the devices' topics through the shared subscription
$share/<FIELDQ_INGEST_SHARE_GROUP>/fq/v1/+/... and acknowledges each message to the broker only after the
journal's fsync, so several ingest processes share the load and one that dies loses nothing: the broker
sends what it had not acknowledged again when it comes back with the same client id.

Options:
  --broker <url>   mqtt://, mqtts://, ws:// or wss:// (default: FIELDQ_INGEST_BROKER_URL)
  --leave          leave the share group for good and exit: takes up this ingest's session (same client id
                   and data folder), journals what the broker kept for it, unsubscribes and ends the session.
                   For an ingest removed while others of the group run; a stopped ingest otherwise keeps its
                   session, and the broker its share, until it comes back.

Environment: FIELDQ_INGEST_BROKER_USERNAME and _PASSWORD (the ingest's account on the broker),
FIELDQ_INGEST_SHARE_GROUP (default fieldq), FIELDQ_INGEST_CLIENT_ID (default: host and data folder; keep it
stable across restarts). Commands and alerts need fieldq's own broker: they are off in this mode.`;

async function ingestCommand(args: string[]): Promise<number> {
  let values: { broker?: string; leave?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args,
      options: {
        broker: { type: "string" },
        leave: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (error) {
    err(`fieldq ingest: ${error instanceof Error ? error.message : String(error)}`);
    return 2;
  }
  if (values.help) {
    out(INGEST_USAGE);
    return 0;
  }
  const loaded = config();
  if (!loaded) return 2;
  const external = {
    ...loaded.ingest.externalBroker,
    url: values.broker ?? loaded.ingest.externalBroker.url,
  };
  if (external.url === undefined) {
    err("fieldq ingest: give the external broker: --broker mqtt://host:1883 or FIELDQ_INGEST_BROKER_URL");
    return 2;
  }
  const url = parseBrokerUrl(external.url);
  if (!url.ok) {
    err(`fieldq ingest: ${url.error}`);
    return 2;
  }
  const cfg: Config = { ...loaded, ingest: { ...loaded.ingest, externalBroker: external } };
  const logger = createLogger(cfg.log);
  const ingest = await startExternalIngest(cfg, { logger });
  logger.info(
    { url: external.url, clientId: ingest.clientId, group: external.group },
    `ingesting from ${external.url} as ${ingest.clientId}`,
  );
  if (values.leave) {
    await ingest.consumer.subscribed();
    logger.info("leaving the share group: journaling what the broker kept for this ingest");
    await ingest.close({ leave: true });
    logger.info(ingest.consumer.counts(), "left the share group");
    return 0;
  }
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  logger.info("shutting down: acknowledging what is journaled, flushing the journal to InfluxDB");
  await ingest.close();
  logger.info(ingest.consumer.counts(), "stopped");
  return 0;
}

const ROLLUP_USAGE = `Usage: npm run fieldq -- rollup [--from <ISO time>] [--to <ISO time>]

Recomputes the rollups that issues, fleet health and firmware cohorts read, for every hour with raw data
in [from, to). The ingest keeps them current by itself; run this after upgrading from a version without
rollups, or after writing raw points around the ingest. Default: the 30 days up to now.`;

async function rollupCommand(args: string[]): Promise<number> {
  let values: { from?: string; to?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args,
      options: { from: { type: "string" }, to: { type: "string" }, help: { type: "boolean", short: "h" } },
      strict: true,
    }));
  } catch (error) {
    err(`fieldq rollup: ${error instanceof Error ? error.message : String(error)}`);
    return 2;
  }
  if (values.help) {
    out(ROLLUP_USAGE);
    return 0;
  }
  const toMs = values.to === undefined ? Date.now() : Date.parse(values.to);
  const fromMs = values.from === undefined ? toMs - 30 * DAY_MS : Date.parse(values.from);
  if (!Number.isFinite(fromMs) || !Number.isFinite(toMs) || fromMs >= toMs) {
    err("fieldq rollup: --from and --to take ISO times (2024-05-01T00:00:00Z), from before to");
    return 2;
  }
  const cfg = config();
  if (!cfg) return 2;
  const influx = createInflux(cfg.influx);
  const started = performance.now();
  let last = 0;
  try {
    const result = await rebuildRollups(
      influx,
      createPointWriter(cfg.influx, 60_000),
      { fromMs, toMs },
      (done, total) => {
        if (done === total || performance.now() - last > 2_000) {
          last = performance.now();
          err(`rollup: ${done}/${total} hours`);
        }
      },
    );
    out(
      `rolled up ${result.hours} hours on ${result.days} ${result.days === 1 ? "day" : "days"} (${result.points} points) in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    return 0;
  } catch (error) {
    err(`fieldq rollup: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
    case "help":
    case "--help":
    case "-h":
      out(USAGE);
      return command === undefined ? 2 : 0;
    case "device-key": {
      const id = rest[0];
      if (id === "--help" || id === "-h") {
        out(
          "Usage: npm run fieldq -- device-key <deviceId>\nPrints the device's MQTT password: base64url(HMAC-SHA256(FIELDQ_DEVICE_SECRET, deviceId)).",
        );
        return 0;
      }
      if (id === undefined || !DEVICE_ID_PATTERN.test(id)) {
        err(
          `fieldq device-key: give a device id matching ${DEVICE_ID_PATTERN} (letters, digits, _ . -; up to 64)`,
        );
        return 2;
      }
      const cfg = config();
      if (!cfg) return 2;
      if (!cfg.mqtt.deviceSecret) {
        err("fieldq device-key: FIELDQ_DEVICE_SECRET is not set");
        return 2;
      }
      out(deviceKey(cfg.mqtt.deviceSecret, id));
      return 0;
    }
    case "rollup":
      return rollupCommand(rest);
    case "ingest":
      return ingestCommand(rest);
    case "token":
      return tokenCommand(rest, config, { out, err });
    case "report":
      return reportCommand(rest, config, { out, err });
    case "webhook-listen":
      return webhookListenCommand(rest, config, { out, err });
    case "sim": {
      const cfg = config();
      if (!cfg) return 2;
      const logger = createLogger(cfg.log);
      return simCommand(rest, simEnv(cfg), logger, { out, err });
    }
    case "start":
    case "broker":
    case "api": {
      const { values } = parseArgs({
        args: rest,
        options: { sim: { type: "string" }, help: { type: "boolean", short: "h" } },
        strict: true,
      });
      if (values.help) {
        out(USAGE);
        return 0;
      }
      const simDevices = values.sim === undefined ? undefined : Number(values.sim);
      if (
        simDevices !== undefined &&
        (!Number.isInteger(simDevices) || simDevices < 1 || command !== "start")
      ) {
        err("fieldq: --sim takes a whole number of devices, with the start command");
        return 2;
      }
      const cfg = config();
      if (!cfg) return 2;
      const logger = createLogger(cfg.log);
      const parts = { broker: command !== "api", api: command !== "broker" };
      return serve(cfg, logger, parts, simDevices);
    }
    default:
      err(`fieldq: unknown command "${command}"\n`);
      err(USAGE);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    err(`fieldq: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  },
);
