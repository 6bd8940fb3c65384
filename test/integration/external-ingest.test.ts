import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import mqtt from "mqtt";
import { afterEach, describe, expect, it } from "vitest";
import type { DeviceError } from "../../contract/messages.js";
import { errorsTopic, telemetryTopic } from "../../contract/topics.js";
import { type Receive, startExternalConsumer } from "../../ingest/external-consumer.js";
import { silentLogger } from "../../observe/logger.js";
import { createMetrics } from "../../observe/metrics.js";
import { eventually } from "../support/alert-receiver.js";
import { testDatabase } from "../support/influx.js";
import { startMosquitto } from "../support/mosquitto.js";

// Issue 14's external-broker case: devices publish QoS 1 through Debian's Mosquitto; two `fieldq ingest`
// processes share its device topics ($share/fieldq/...). One is frozen with messages in flight to it, killed
// with -9 and started again with its client id and data folder (Mosquitto 2.0 keeps a shared subscription's
// in-flight and queued messages for the member's session, it does not hand them to the other member). Every
// message a device got a PUBACK for is then one point in InfluxDB, also after a stops (SIGTERM: Mosquitto
// queues its share for its session) and leaves the group (`fieldq ingest --leave`).

const DEVICES = 8;
const PER_DEVICE = 150;

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

type LogLine = Record<string, unknown>;

/** `fieldq ingest --broker <url>` as a child process; its JSON log lines, parsed. */
function startIngestProcess(broker: string, env: NodeJS.ProcessEnv, extraArgs: string[] = []) {
  const child = spawn(
    "node",
    ["--import", "tsx", "cli/fieldq.ts", "ingest", "--broker", broker, ...extraArgs],
    {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const lines: LogLine[] = [];
  createInterface({ input: child.stdout }).on("line", (text) => {
    try {
      lines.push(JSON.parse(text) as LogLine);
    } catch {}
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const find = (match: (l: LogLine) => boolean) =>
    eventually(() => {
      const found = lines.find(match);
      if (found === undefined && child.exitCode !== null)
        throw new Error(`fieldq ingest exited ${child.exitCode}: ${stderr}`);
      return found;
    }, 30_000);
  return { child, lines, find };
}

async function kill(child: ChildProcess, signal: NodeJS.Signals) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill(signal);
  await exited;
}

const subscribed = (l: LogLine) => l.msg === "subscribed to the devices' topics";
const stopped = (l: LogLine) => l.msg === "stopped";

/** Every (device, seq) stored in the telemetry measurement, one entry per point. */
async function storedSeqs(url: string, database: string): Promise<string[]> {
  const response = await fetch(`${url}/query`, {
    method: "POST",
    body: new URLSearchParams({ db: database, q: 'SELECT "seq", "device" FROM "telemetry"' }),
  });
  const body = (await response.json()) as {
    results: { series?: { columns: string[]; values: unknown[][] }[] }[];
  };
  const series = body.results[0]?.series?.[0];
  if (series === undefined) return [];
  const seq = series.columns.indexOf("seq");
  const device = series.columns.indexOf("device");
  return series.values.map((row) => `${String(row[device])}/${String(row[seq])}`);
}

it("two ingest processes share an external Mosquitto's device topics; one killed with -9 loses nothing, one stopped keeps its share until it leaves, and every acknowledged message is stored once", async () => {
  const mosquitto = await startMosquitto();
  const db = await testDatabase("external_ingest");
  const dirs = [
    await mkdtemp(join(tmpdir(), "fieldq-ext-a-")),
    await mkdtemp(join(tmpdir(), "fieldq-ext-b-")),
  ];
  cleanups.push(async () => {
    await mosquitto.stop();
    await db.drop();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });
  const envOf = (name: string, dataDir: string) => ({
    FIELDQ_INFLUX_URL: db.url,
    FIELDQ_INFLUX_DB: db.database,
    FIELDQ_DATA_DIR: dataDir,
    FIELDQ_INGEST_CLIENT_ID: `fieldq-test-ingest-${name}`,
    FIELDQ_FLUSH_INTERVAL: "50ms",
    FIELDQ_ROLLUP_INTERVAL: "1s",
    FIELDQ_LOG_FORMAT: "json",
    FIELDQ_LOG_LEVEL: "info",
  });
  const [dirA, dirB] = dirs as [string, string];
  const a = startIngestProcess(mosquitto.url, envOf("a", dirA));
  cleanups.push(() => kill(a.child, "SIGKILL"));
  const b = startIngestProcess(mosquitto.url, envOf("b", dirB));
  cleanups.push(() => kill(b.child, "SIGKILL"));
  await Promise.all([a.find(subscribed), b.find(subscribed)]);

  const devices = await Promise.all(
    Array.from({ length: DEVICES }, (_, i) =>
      mqtt.connectAsync(mosquitto.url, {
        clientId: `ext-dev-${i}`,
        protocolVersion: 5,
        reconnectPeriod: 0,
      }),
    ),
  );
  cleanups.push(() => Promise.all(devices.map((d) => d.endAsync(true))));
  const acknowledged = new Set<string>();
  const publish = (from: number, to: number) =>
    Promise.all(
      devices.map(async (device, i) => {
        const id = `ext-dev-${i}`;
        for (let seq = from; seq < to; seq += 1) {
          const payload = JSON.stringify({ ts: Date.now(), seq, metrics: { snr_margin_db: 7 + (seq % 5) } });
          await device.publishAsync(telemetryTopic(id), payload, { qos: 1 });
          acknowledged.add(`${id}/${seq}`);
        }
      }),
    );

  await publish(1, 51);
  // Frozen, a is sent its share and acknowledges none of it: its messages are in flight when it dies.
  a.child.kill("SIGSTOP");
  await publish(51, 101);
  await kill(a.child, "SIGKILL");
  await publish(101, PER_DEVICE + 1);
  expect(acknowledged.size).toBe(DEVICES * PER_DEVICE);

  const again = startIngestProcess(mosquitto.url, envOf("a", dirA));
  cleanups.push(() => kill(again.child, "SIGKILL"));
  await again.find(subscribed);
  const stored = await eventually(async () => {
    const seqs = await storedSeqs(db.url, db.database);
    return new Set(seqs).size >= acknowledged.size ? seqs : undefined;
  }, 30_000);

  expect(new Set(stored)).toEqual(acknowledged);
  expect(stored.length).toBe(acknowledged.size);

  // Stopped with SIGTERM, a keeps its session: Mosquitto queues its share for it. `fieldq ingest --leave`
  // journals that queue and takes a out of the group; what is published afterwards all goes to b.
  await kill(again.child, "SIGTERM");
  await publish(PER_DEVICE + 1, PER_DEVICE + 21);
  const leaving = startIngestProcess(mosquitto.url, envOf("a", dirA), ["--leave"]);
  cleanups.push(() => kill(leaving.child, "SIGKILL"));
  const left = (await leaving.find((l) => l.msg === "left the share group")) as LogLine & {
    acknowledged: number;
  };
  expect(left.acknowledged).toBeGreaterThan(0);
  if (leaving.child.exitCode === null) await once(leaving.child, "exit");
  expect(leaving.child.exitCode).toBe(0);
  await publish(PER_DEVICE + 21, PER_DEVICE + 41);
  const afterLeave = await eventually(async () => {
    const seqs = await storedSeqs(db.url, db.database);
    return new Set(seqs).size >= acknowledged.size ? seqs : undefined;
  }, 30_000);
  expect(new Set(afterLeave)).toEqual(acknowledged);
  expect(afterLeave.length).toBe(acknowledged.size);
  await kill(b.child, "SIGTERM");
  const countsOf = async (proc: ReturnType<typeof startIngestProcess>) =>
    (await proc.find(stopped)) as LogLine & { acknowledged: number; redelivered: number };
  const [fromA, fromB] = [await countsOf(again), await countsOf(b)];
  // Both took a share: b did not take all, and a's session, resumed, got its in-flight messages again.
  expect(fromB.acknowledged).toBeGreaterThan(0);
  expect(fromB.acknowledged).toBeLessThan(acknowledged.size);
  expect(fromA.acknowledged + fromB.acknowledged).toBeLessThanOrEqual(acknowledged.size + fromA.redelivered);
  expect(fromA.acknowledged).toBeGreaterThan(0);
  expect(fromA.redelivered).toBeGreaterThan(0);
  expect(again.lines.find((l) => l.msg === "connected to the external broker")?.sessionPresent).toBe(true);
}, 60_000);

it("an ingest whose journal is full leaves the messages with Mosquitto and stores each once when it has room", async () => {
  const mosquitto = await startMosquitto();
  const db = await testDatabase("external_full");
  const dataDir = await mkdtemp(join(tmpdir(), "fieldq-ext-full-"));
  const closedInflux = createServer().listen(0, "127.0.0.1");
  await once(closedInflux, "listening");
  const awayUrl = `http://127.0.0.1:${(closedInflux.address() as AddressInfo).port}`;
  await new Promise((resolve) => closedInflux.close(resolve));
  cleanups.push(async () => {
    await mosquitto.stop();
    await db.drop();
    await rm(dataDir, { recursive: true, force: true });
  });
  const envWith = (influxUrl: string) => ({
    FIELDQ_INFLUX_URL: influxUrl,
    FIELDQ_INFLUX_DB: db.database,
    FIELDQ_DATA_DIR: dataDir,
    FIELDQ_INGEST_CLIENT_ID: "fieldq-test-ingest-full",
    FIELDQ_JOURNAL_MAX_BYTES: "20000",
    FIELDQ_FLUSH_INTERVAL: "50ms",
    FIELDQ_LOG_FORMAT: "json",
    FIELDQ_LOG_LEVEL: "info",
  });
  // InfluxDB away: the journal fills up and stays full.
  const first = startIngestProcess(mosquitto.url, envWith(awayUrl));
  cleanups.push(() => kill(first.child, "SIGKILL"));
  await first.find(subscribed);
  const device = await mqtt.connectAsync(mosquitto.url, { clientId: "ext-full-1", protocolVersion: 5 });
  cleanups.push(() => device.endAsync(true));
  const sent = new Set<string>();
  for (let seq = 1; seq <= 200; seq += 1) {
    const payload = JSON.stringify({ ts: Date.now(), seq, metrics: { snr_margin_db: 7 } });
    await device.publishAsync(telemetryTopic("ext-full-1"), payload, { qos: 1 });
    sent.add(`ext-full-1/${seq}`);
  }
  await first.find((l) => String(l.msg).startsWith("journal full"));
  await kill(first.child, "SIGTERM");

  // Back with InfluxDB: the journal drains, and Mosquitto sends what was not acknowledged again.
  const second = startIngestProcess(mosquitto.url, envWith(db.url));
  cleanups.push(() => kill(second.child, "SIGKILL"));
  const stored = await eventually(async () => {
    const seqs = await storedSeqs(db.url, db.database);
    return new Set(seqs).size >= sent.size ? seqs : undefined;
  }, 40_000);
  expect(new Set(stored)).toEqual(sent);
  expect(stored.length).toBe(sent.size);
}, 60_000);

describe("the shared-subscription consumer", () => {
  const setUp = async () => {
    const mosquitto = await startMosquitto();
    cleanups.push(() => mosquitto.stop());
    const device = await mqtt.connectAsync(mosquitto.url, {
      clientId: "ext-dev-1",
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    cleanups.push(() => device.endAsync(true));
    return { mosquitto, device };
  };
  const consumerOf = (url: string, receive: Receive, clientId = "fieldq-test-consumer") => {
    const consumer = startExternalConsumer({
      url,
      clientId,
      group: "fieldq",
      receive,
      logger: silentLogger,
      metrics: createMetrics(),
      reconnectMs: 60_000,
      fullPauseMs: 50,
    });
    cleanups.push(() => consumer.close());
    return consumer;
  };
  const seqOf = (payload: Buffer) => (JSON.parse(payload.toString()) as { seq: number }).seq;
  const telemetry = (seq: number) => JSON.stringify({ ts: Date.now(), seq, metrics: { snr_margin_db: 7 } });

  it("acknowledges a message only once the ingest answered it; a refused one is acknowledged and its device told", async () => {
    const { mosquitto, device } = await setUp();
    const held: (() => void)[] = [];
    const consumer = consumerOf(mosquitto.url, async (_deviceId, _topic, payload) => {
      const seq = seqOf(payload);
      if (seq % 3 === 0) return { kind: "refused", reason: "invalid_schema", message: `seq ${seq} is bad` };
      if (seq % 3 === 1) return { kind: "accepted" };
      await new Promise<void>((resolve) => held.push(resolve));
      return { kind: "accepted" };
    });
    // Released before the consumer closes, also when an assertion failed, so close() does not wait on them.
    cleanups.push(async () => {
      for (const release of held) release();
    });
    await consumer.subscribed();
    const errors: DeviceError[] = [];
    device.on("message", (_topic, payload) => errors.push(JSON.parse(payload.toString()) as DeviceError));
    await device.subscribeAsync(errorsTopic("ext-dev-1"), { qos: 0 });
    for (let seq = 1; seq <= 9; seq += 1)
      await device.publishAsync(telemetryTopic("ext-dev-1"), telemetry(seq), { qos: 1 });
    await eventually(() => (consumer.counts().acknowledged === 6 && held.length === 3 ? true : undefined));
    await eventually(() => (errors.length === 3 ? true : undefined));
    expect(errors.map((e) => e.message)).toEqual(["seq 3 is bad", "seq 6 is bad", "seq 9 is bad"]);
    expect(
      errors.every((e) => e.reason === "invalid_schema" && e.topic === telemetryTopic("ext-dev-1")),
    ).toBe(true);

    // The same session taken over by another client: the broker sends it what it still holds in flight.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const resent: number[] = [];
    const takeover = await mqtt.connectAsync(mosquitto.url, {
      clientId: "fieldq-test-consumer",
      protocolVersion: 5,
      clean: false,
      reconnectPeriod: 0,
      properties: { sessionExpiryInterval: 60 },
      customHandleAcks: (_topic, payload, _packet, done) => {
        resent.push(seqOf(payload));
        done(0);
      },
    });
    cleanups.push(() => takeover.endAsync(true));
    await eventually(() => (resent.length >= 3 ? true : undefined));
    expect(resent.sort()).toEqual([2, 5, 8]);
    for (const release of held) release();
  });

  it("leaves a message unacknowledged while the journal is full and takes it again from the resumed session", async () => {
    const { mosquitto, device } = await setUp();
    const answers: ("unavailable" | "accepted")[] = ["unavailable", "accepted"];
    const seen: number[] = [];
    const consumer = consumerOf(mosquitto.url, async (_deviceId, _topic, payload) => {
      seen.push(seqOf(payload));
      return { kind: answers.shift() ?? "accepted" };
    });
    await consumer.subscribed();
    await device.publishAsync(telemetryTopic("ext-dev-1"), telemetry(1), { qos: 1 });
    await eventually(() => (consumer.counts().acknowledged === 1 ? true : undefined));
    expect(seen).toEqual([1, 1]);
    expect(consumer.counts().redelivered).toBe(1);
  });
});
