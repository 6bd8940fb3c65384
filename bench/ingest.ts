import { execFileSync, fork } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { parseArgs } from "node:util";
import mqtt from "mqtt";
import { loadConfig } from "../config/env.js";
import { deviceKey } from "../contract/device-key.js";
import { TOPIC_ROOT, telemetryTopic } from "../contract/topics.js";
import { decodeMessage } from "../ingest/decode.js";
import { messagePoints } from "../ingest/to-points.js";
import { silentLogger } from "../observe/logger.js";
import { startIngestBroker } from "../stack/start-stack.js";
import { encodePoint } from "../storage/line-protocol.js";
import { MEASUREMENTS } from "../storage/schema.js";
import { startMosquitto } from "../test/support/mosquitto.js";
import { listenBareAedes } from "./harness.js";
import { benchDeviceId, type LoadRun, publishTelemetry, telemetryPayload } from "./telemetry-load.js";

// npm run bench:ingest -- [--devices 50] [--messages 400] [--inflight 10] [--cpu-prof DIR]
// QoS 1 single-sample telemetry from many devices at once, and in the same run what the machine can do
// without fieldq, so every figure is also a ratio:
//   1. raw InfluxDB: the same telemetry lines fieldq writes, straight to /write in 5,000-line bodies;
//   2. bare aedes (no auth, no storage) in a process of its own;
//   3. the do-it-yourself stack: Debian's Mosquitto with unlimited queues and one mqtt.js subscriber that
//      joins messages into 5,000-line InfluxDB writes (what Node-RED or Telegraf do; nothing is durable);
//   4. fieldq's broker + ingest (validated, journaled with fsync before each PUBACK, drained into InfluxDB)
//      in a process of its own, while this process polls InfluxDB for every device's highest stored seq,
//      so each message's publish-to-queryable time is known (an upper bound: poll period + query time).
// The publishing clients run here; influxd is its own process (scripts/influxd.sh or FIELDQ_BENCH_INFLUX_URL).
// It ends with one JSON line of the figures. docs/performance.md has the figures and a profile.

const { values } = parseArgs({
  options: {
    devices: { type: "string", default: "50" },
    messages: { type: "string", default: "400" },
    inflight: { type: "string", default: "10" },
    "cpu-prof": { type: "string" },
    "poll-ms": { type: "string", default: "100" },
    rate: { type: "string", default: "0" },
    child: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  process.stdout.write(
    [
      "Usage: npm run bench:ingest -- [--devices 50] [--messages 400 per device] [--inflight 10 per device]",
      "                               [--rate 0] [--cpu-prof DIR] [--poll-ms 100]",
      "  --rate N        all devices together publish at most N msg/s, evenly spread (0: as fast as acks allow);",
      "                  e.g. half the acked rate, for publish-to-queryable at half load",
      "  --cpu-prof DIR  profile the fieldq and bare-aedes processes (node --cpu-prof) into DIR/fieldq and",
      "                  DIR/aedes (one file per thread); summarise: npx tsx bench/profile-summary.ts DIR/fieldq",
      "  --poll-ms N     how often InfluxDB is asked for the stored seqs (publish-to-queryable resolution)",
      "Environment: FIELDQ_BENCH_INFLUX_URL uses a running InfluxDB 1.x instead of a private influxd.",
      "",
    ].join("\n"),
  );
  process.exit(0);
}
const devices = Number(values.devices);
const messages = Number(values.messages);
const inflight = Number(values.inflight);
const pollMs = Number(values["poll-ms"]);
const paceRate = Number(values.rate);
const secret = "bench-secret-0123456789";
const out = (line: string) => process.stdout.write(`${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const deviceId = benchDeviceId;
const payloadOf = telemetryPayload;

// --- The processes under test ---------------------------------------------------------------------------

/** What the fieldq child measured of its own write path (instruments, no change to it). */
export type ChildStats = {
  backlog: number;
  /** Journal group commits (LevelDB batches with sync) and the appends (messages) in them. */
  syncs: number;
  syncedEntries: number;
  syncMs: number[];
  /** The writer's InfluxDB writes (bodies), their points and times. */
  writes: number;
  writtenPoints: number;
  writeMs: number[];
  /** The writer's other steps per drained batch, in total ms. */
  readBatchMs: number;
  dedupeMs: number;
  commitMs: number;
  /** How late the broker's event loop ran its timers (ms): what holds every PUBACK back. */
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
};

type ChildMessage = { port: number } | { stats: ChildStats };

const timed = <A extends unknown[], R>(f: (...a: A) => Promise<R>, record: (ms: number, ...a: A) => void) =>
  async function (this: unknown, ...a: A): Promise<R> {
    const t = performance.now();
    const result = await f.apply(this, a);
    record(performance.now() - t, ...a);
    return result;
  };

async function fieldqChild() {
  const loaded = loadConfig(JSON.parse(process.env.FIELDQ_BENCH_INGEST_ENV ?? "{}") as NodeJS.ProcessEnv);
  if (!loaded.ok) throw new Error(loaded.problems.join("; "));
  const stack = await startIngestBroker(loaded.config, { logger: silentLogger });
  const stats: ChildStats = {
    backlog: 0,
    syncs: 0,
    syncedEntries: 0,
    syncMs: [],
    writes: 0,
    writtenPoints: 0,
    writeMs: [],
    readBatchMs: 0,
    dedupeMs: 0,
    commitMs: 0,
    loopDelayP99Ms: 0,
    loopDelayMaxMs: 0,
  };
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  // Measuring only: the journal's LevelDB batch and the writer's point writer, wrapped where they are.
  type Op = { type: string; sublevel?: unknown };
  const journal = stack.journal as unknown as {
    db: { batch: (ops?: Op[], options?: { sync?: boolean }) => Promise<void> };
    readBatch: typeof stack.journal.readBatch;
    alreadyWritten: typeof stack.journal.alreadyWritten;
    commit: typeof stack.journal.commit;
  };
  const batch = journal.db.batch.bind(journal.db) as (
    ops?: Op[],
    options?: { sync?: boolean },
  ) => Promise<void>;
  // A group commit is one LevelDB put of all its appends: they are counted as they are handed over.
  const pending = journal as unknown as { pending: unknown[] };
  const syncBatch = timed(batch as (ops: Op[], options: { sync: boolean }) => Promise<void>, (ms) => {
    stats.syncs += 1;
    stats.syncMs.push(ms);
  });
  journal.db.batch = ((ops?: Op[], options?: { sync?: boolean }) => {
    if (!ops || !options?.sync) return batch(ops, options);
    return syncBatch(ops, { sync: true });
  }) as typeof journal.db.batch;
  const append = stack.journal.append.bind(stack.journal);
  stack.journal.append = (...args) => {
    const before = pending.pending.length;
    const result = append(...args);
    stats.syncedEntries += pending.pending.length - before;
    return result;
  };
  journal.readBatch = timed(journal.readBatch.bind(journal), (ms) => {
    stats.readBatchMs += ms;
  });
  journal.alreadyWritten = timed(journal.alreadyWritten.bind(journal), (ms) => {
    stats.dedupeMs += ms;
  });
  journal.commit = timed(journal.commit.bind(journal), (ms) => {
    stats.commitMs += ms;
  });
  const writerOptions = (
    stack.writer as unknown as { options: { write: (p: readonly unknown[]) => Promise<void> } }
  ).options;
  writerOptions.write = timed(writerOptions.write, (ms, points) => {
    stats.writes += 1;
    stats.writtenPoints += points.length;
    stats.writeMs.push(ms);
  });
  process.on("disconnect", () => process.exit(1)); // the bench ended without closing it
  process.send?.({ port: stack.mqttPort } satisfies ChildMessage);
  process.on("message", async (message: { kind: string }) => {
    if (message.kind === "stats") {
      const loop = { loopDelayP99Ms: loopDelay.percentile(99) / 1e6, loopDelayMaxMs: loopDelay.max / 1e6 };
      process.send?.({
        stats: { ...stats, ...loop, backlog: stack.journal.backlog.entries },
      } satisfies ChildMessage);
    } else if (message.kind === "close") {
      await stack.close();
      process.exit(0);
    }
  });
}

async function aedesChild() {
  const { broker, server, port } = await listenBareAedes();
  process.on("disconnect", () => process.exit(1));
  process.send?.({ port } satisfies ChildMessage);
  process.on("message", (message: { kind: string }) => {
    if (message.kind === "close") broker.close(() => server.close(() => process.exit(0)));
  });
}

/**
 * The DIY stack's consumer, as people write it in Node-RED or Telegraf: one QoS 1 subscription to every
 * device's telemetry, each message parsed and turned into a line, 5,000 lines (or what a second brought)
 * per InfluxDB write, one write at a time. It acknowledges on receipt: nothing is durable.
 */
async function diyChild() {
  const { DIY_MQTT_PORT: port, DIY_INFLUX_URL: url, DIY_INFLUX_DB: db } = process.env;
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
    clientId: "diy-consumer",
    protocolVersion: 4,
    reconnectPeriod: 0,
  });
  await client.subscribeAsync(`${TOPIC_ROOT}/+/telemetry`, { qos: 1 });
  let lines: string[] = [];
  let writing: Promise<void> = Promise.resolve();
  const flush = () => {
    if (lines.length === 0) return;
    const body = lines.join("\n");
    lines = [];
    writing = writing.then(async () => {
      const response = await fetch(`${url}/write?${new URLSearchParams({ db: db ?? "", precision: "ms" })}`, {
        method: "POST",
        body,
      });
      if (response.status !== 204) process.stderr.write(`DIY write: HTTP ${response.status}\n`);
    });
  };
  client.on("message", (topic, payload) => {
    const device = topic.split("/")[2];
    const m = JSON.parse(payload.toString()) as { ts: number; seq: number; metrics: Record<string, number> };
    const fields = Object.entries(m.metrics).map(([k, v]) => `${k}=${v}`);
    lines.push(`telemetry,device=${device} seq=${m.seq}i,${fields.join(",")} ${m.ts}`);
    if (lines.length >= 5000) flush();
  });
  setInterval(flush, 1000);
  process.on("disconnect", () => process.exit(1));
  process.send?.({ port: Number(port) } satisfies ChildMessage);
  process.on("message", async (message: { kind: string }) => {
    if (message.kind !== "close") return;
    flush();
    await writing;
    await client.endAsync();
    process.exit(0);
  });
}

type Child = { port: number; pid: number; stats(): Promise<ChildStats>; close(): Promise<void> };

/**
 * CPU time (user + system, all threads: LevelDB's fsyncs on libuv's pool too) a process has used, in ms,
 * from /proc: the machine's other load stretches wall time but not this.
 */
function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticksPerSecond = 100; // USER_HZ, getconf CLK_TCK
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond;
}

/** µs of CPU per message the processes used between the two calls. */
function cpuMeter(pids: number[]) {
  const total = () => pids.reduce((sum, pid) => sum + cpuMsOf(pid), 0);
  const start = total();
  return () => ((total() - start) * 1000) / (devices * messages);
}

async function forkChild(kind: "fieldq" | "aedes" | "diy", env: NodeJS.ProcessEnv = {}): Promise<Child> {
  const profDir = values["cpu-prof"];
  const prof = profDir ? ["--cpu-prof", `--cpu-prof-dir=${resolve(profDir, kind)}`] : [];
  const child = fork(process.argv[1] as string, ["--child", kind], {
    execArgv: [...process.execArgv, ...prof],
    env: { ...process.env, ...env },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const exited = once(child, "exit");
  const first = await Promise.race([once(child, "message"), exited.then(() => undefined)]);
  if (first === undefined) throw new Error(`the ${kind} process ended before listening`);
  return {
    port: (first[0] as { port: number }).port,
    pid: child.pid as number,
    async stats() {
      const answer = once(child, "message");
      child.send({ kind: "stats" });
      return ((await answer)[0] as { stats: ChildStats }).stats;
    },
    async close() {
      child.send({ kind: "close" });
      await exited;
    },
  };
}

// --- The publishing devices -----------------------------------------------------------------------------

type Run = LoadRun;

/** Every device publishes its messages with at most `inflight` unacknowledged at a time. */
function publishAll(port: number): Promise<Run> {
  return publishTelemetry(`mqtt://127.0.0.1:${port}`, {
    devices,
    messages,
    inflight,
    rate: paceRate,
    connect: (i) => ({
      clientId: deviceId(i),
      username: deviceId(i),
      password: deviceKey(secret, deviceId(i)),
      protocolVersion: 4,
    }),
  });
}

// --- InfluxDB -------------------------------------------------------------------------------------------

async function influxQuery(url: string, db: string, q: string) {
  const response = await fetch(`${url}/query`, { method: "POST", body: new URLSearchParams({ db, q }) });
  const body = (await response.json()) as {
    results?: { series?: { tags?: Record<string, string>; values: unknown[][] }[]; error?: string }[];
  };
  const result = body.results?.[0];
  if (!response.ok || result?.error) throw new Error(`InfluxDB: ${result?.error ?? response.status} (${q})`);
  return result?.series ?? [];
}

/**
 * Asks InfluxDB every pollMs for each device's highest stored seq; a device's messages are journaled and
 * written in the order they arrived, which is their seq order, so every seq up to it is queryable.
 */
function pollQueryable(url: string, db: string, from: string) {
  const queryableAt = Array.from({ length: devices }, () => new Float64Array(messages + 1));
  const highest = new Int32Array(devices);
  let stored = 0;
  let stop = false;
  let lastAt = 0;
  const q = `SELECT max("seq") FROM ${from} WHERE time > now() - 1h GROUP BY "device"`;
  const loop = (async () => {
    while (!stop) {
      const asked = performance.now();
      const series = await influxQuery(url, db, q).catch(() => []);
      const at = performance.now();
      for (const s of series) {
        const i = Number(s.tags?.device?.slice("bench-".length));
        const max = Number(s.values[0]?.[1]);
        const times = queryableAt[i];
        if (times === undefined || !(max > (highest[i] ?? 0))) continue;
        for (let seq = (highest[i] ?? 0) + 1; seq <= Math.min(max, messages); seq++) times[seq] = at;
        stored += Math.min(max, messages) - (highest[i] ?? 0);
        highest[i] = Math.min(max, messages);
        lastAt = at;
      }
      await sleep(Math.max(0, pollMs - (performance.now() - asked)));
    }
  })();
  return {
    queryableAt,
    stored: () => stored,
    lastAt: () => lastAt,
    async stop() {
      stop = true;
      await loop;
    },
  };
}

/** The telemetry lines fieldq writes for these messages, made by the ingest's own decode and mapping. */
function telemetryLines(count: number): string[] {
  const lines: string[] = [];
  const ts = Date.now();
  for (let n = 0; n < count; n++) {
    const id = deviceId(n % devices);
    const seq = Math.floor(n / devices) + 1;
    const topic = telemetryTopic(id);
    const decoded = decodeMessage(topic, Buffer.from(payloadOf(seq, ts + seq)), 1 << 20);
    if (!decoded.ok) throw new Error(decoded.refusal.message);
    const mapped = messagePoints(decoded.message, {
      meta: undefined,
      receivedMs: ts + seq,
      discriminator: n,
      clockSkewFutureMs: 60_000,
      clockSkewPastMs: 86_400_000,
    });
    for (const { point } of mapped.records) lines.push(encodePoint(point));
  }
  return lines;
}

/** Points/s of these lines written in 5,000-line bodies, `concurrency` requests at a time. */
async function rawInflux(url: string, lines: string[], concurrency: number): Promise<number> {
  const db = `bench_raw_${Date.now()}`;
  await influxQuery(url, db, `CREATE DATABASE "${db}"`);
  const bodies: string[] = [];
  for (let i = 0; i < lines.length; i += 5000) bodies.push(lines.slice(i, i + 5000).join("\n"));
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < bodies.length) {
        const body = bodies[next++] as string;
        const response = await fetch(`${url}/write?${new URLSearchParams({ db, precision: "n" })}`, {
          method: "POST",
          body,
        });
        if (response.status !== 204)
          throw new Error(`raw write: HTTP ${response.status} ${await response.text()}`);
      }
    }),
  );
  const rate = lines.length / ((performance.now() - started) / 1000);
  await influxQuery(url, db, `DROP DATABASE "${db}"`);
  return rate;
}

/** Publishes every message through the broker at port while polling InfluxDB for what became queryable. */
async function publishUntilQueryable(url: string, db: string, from: string, port: number) {
  const total = devices * messages;
  const poller = pollQueryable(url, db, from);
  const run = await publishAll(port);
  const deadline = performance.now() + 120_000;
  while (poller.stored() < total && performance.now() < deadline) await sleep(pollMs);
  await poller.stop();
  const queryable: number[] = [];
  run.sentAt.forEach((sent, i) => {
    const at = poller.queryableAt[i] as Float64Array;
    for (let seq = 1; seq <= messages; seq++)
      if (at[seq]) queryable.push((at[seq] as number) - (sent[seq] as number));
  });
  return {
    acks: sortedOf(run.latenciesMs),
    ackedRate: total / run.seconds,
    toQueryable: sortedOf(queryable),
    missing: total - poller.stored(),
    endToEndRate: poller.stored() / ((poller.lastAt() - run.startedAt) / 1000),
  };
}

// --- Figures --------------------------------------------------------------------------------------------

const quantile = (sorted: ArrayLike<number>, q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
const sortedOf = (xs: Iterable<number>) => Float64Array.from(xs).sort();
const ms = (x: number) => `${x.toFixed(1)} ms`;
const round = (x: number, digits = 1) => Number(x.toFixed(digits));
const label = (name: string) => name.padEnd(38);
const rate = (x: number) => x.toFixed(0).padStart(7);

function gitCommit(): string {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"]).toString().trim();
  } catch {
    return "unknown";
  }
}

async function main() {
  const influxDir = await mkdtemp(join(tmpdir(), "fieldq-bench-influx-"));
  const dataDir = await mkdtemp(join(tmpdir(), "fieldq-bench-data-"));
  const influxUrl =
    process.env.FIELDQ_BENCH_INFLUX_URL ??
    execFileSync("bash", ["scripts/influxd.sh", "start", influxDir]).toString().trim();
  const database = `bench_${Date.now()}`;
  try {
    const env = {
      FIELDQ_MQTT_HOST: "127.0.0.1",
      FIELDQ_MQTT_PORT: "0",
      FIELDQ_INFLUX_URL: influxUrl,
      FIELDQ_INFLUX_DB: database,
      FIELDQ_DEVICE_SECRET: secret,
      FIELDQ_DATA_DIR: dataDir,
      // Each device here sends as fast as it can: the pipeline's throughput is measured, not a device's share.
      FIELDQ_DEVICE_RATE: "1000000",
      FIELDQ_DEVICE_BURST: "1000000",
      FIELDQ_LOG_LEVEL: "silent",
      FIELDQ_LOG_FORMAT: "json",
      // The writer's tuning, from the bench's own environment when set, to measure another setting.
      ...Object.fromEntries(
        ["FIELDQ_FLUSH_INTERVAL", "FIELDQ_BATCH_POINTS", "FIELDQ_BATCH_BYTES"].flatMap((name) =>
          process.env[name] === undefined ? [] : [[name, process.env[name]]],
        ),
      ),
    };
    const loaded = loadConfig(env);
    if (!loaded.ok) throw new Error(loaded.problems.join("; "));
    const total = devices * messages;
    const { batchPoints, flushIntervalMs } = loaded.config.ingest;
    out(
      `${devices} devices × ${messages} QoS 1 single-sample telemetry messages (${total}), ${inflight} in flight per device${paceRate > 0 ? `, paced at ${paceRate} msg/s in all` : ""}; ${influxUrl}`,
    );
    out(
      `fieldq's writer: up to ${batchPoints} points per write, a partial batch waits ${flushIntervalMs} ms; InfluxDB polled every ${pollMs} ms`,
    );

    const lines = telemetryLines(Math.max(total, 100_000));
    const raw1 = await rawInflux(influxUrl, lines, 1);
    const raw2 = await rawInflux(influxUrl, lines, 2);
    out(
      `${label("raw InfluxDB /write, 5,000-line bodies")} ${rate(raw1)} points/s   (2 at a time: ${raw2.toFixed(0)})`,
    );

    const aedes = await forkChild("aedes");
    const bareCpu = cpuMeter([aedes.pid]);
    // The publishing devices run in this process, which does nothing else while bare aedes is measured.
    const devicesCpu = cpuMeter([process.pid]);
    let bareCpuUs = 0;
    let devicesCpuUs = 0;
    const bare = await publishAll(aedes.port).finally(() => {
      bareCpuUs = bareCpu();
      devicesCpuUs = devicesCpu();
      return aedes.close();
    });
    const bareAcks = sortedOf(bare.latenciesMs);
    const bareRate = total / bare.seconds;
    out(
      `${label("bare aedes (no auth, no storage)")} ${rate(bareRate)} msg/s   ack p50 ${ms(quantile(bareAcks, 0.5))}   p99 ${ms(quantile(bareAcks, 0.99))}`,
    );

    const diyDb = `bench_diy_${Date.now()}`;
    await influxQuery(influxUrl, diyDb, `CREATE DATABASE "${diyDb}"`);
    const mosquitto = await startMosquitto(["log_dest none"]);
    let diy: Awaited<ReturnType<typeof publishUntilQueryable>>;
    let diyCpuUs = 0;
    try {
      const consumer = await forkChild("diy", {
        DIY_MQTT_PORT: String(mosquitto.port),
        DIY_INFLUX_URL: influxUrl,
        DIY_INFLUX_DB: diyDb,
      });
      const diyCpu = cpuMeter([mosquitto.pid, consumer.pid]);
      diy = await publishUntilQueryable(influxUrl, diyDb, `"telemetry"`, mosquitto.port).finally(() => {
        diyCpuUs = diyCpu();
        return consumer.close();
      });
    } finally {
      await mosquitto.stop();
      await influxQuery(influxUrl, diyDb, `DROP DATABASE "${diyDb}"`).catch(() => []);
    }
    out(
      `${label("DIY: Mosquitto acked (nothing durable)")} ${rate(diy.ackedRate)} msg/s   ack p50 ${ms(quantile(diy.acks, 0.5))}   p99 ${ms(quantile(diy.acks, 0.99))}`,
    );
    out(
      `${label("DIY end to end, 5,000-line writes")} ${rate(diy.endToEndRate)} msg/s   publish to queryable p50 ${ms(quantile(diy.toQueryable, 0.5))}   p99 ${ms(quantile(diy.toQueryable, 0.99))}${diy.missing > 0 ? `   ${diy.missing} never queryable` : ""}`,
    );

    const fieldq = await forkChild("fieldq", { FIELDQ_BENCH_INGEST_ENV: JSON.stringify(env) });
    let stats: ChildStats;
    let fieldqCpuUs = 0;
    let measured: Awaited<ReturnType<typeof publishUntilQueryable>>;
    try {
      // The schema exists once the writer made it; then the poller can ask from the first message on.
      for (let tries = 0; ; tries++) {
        const shown = await influxQuery(influxUrl, database, "SHOW RETENTION POLICIES").catch(() => []);
        if (shown.length > 0 || tries > 100) break;
        await sleep(50);
      }
      const { name, rp } = MEASUREMENTS.telemetry;
      const fieldqCpu = cpuMeter([fieldq.pid]);
      measured = await publishUntilQueryable(influxUrl, database, `"${rp}"."${name}"`, fieldq.port);
      fieldqCpuUs = fieldqCpu();
      stats = await fieldq.stats();
    } finally {
      await fieldq.close();
    }
    const { acks, ackedRate, toQueryable, missing, endToEndRate } = measured;
    out(
      `${label("fieldq acked (validated, fsync'd journal)")} ${rate(ackedRate)} msg/s   ack p50 ${ms(quantile(acks, 0.5))}   p99 ${ms(quantile(acks, 0.99))}`,
    );
    out(
      `${label("fieldq end to end, queryable in InfluxDB")} ${rate(endToEndRate)} msg/s   publish to queryable p50 ${ms(quantile(toQueryable, 0.5))}   p99 ${ms(quantile(toQueryable, 0.99))}${missing > 0 ? `   ${missing} never queryable` : ""}`,
    );
    const syncs = sortedOf(stats.syncMs);
    const writes = sortedOf(stats.writeMs);
    const perSync = stats.syncedEntries / Math.max(1, stats.syncs);
    const perWrite = stats.writtenPoints / Math.max(1, stats.writes);
    out(
      `  journal: ${stats.syncs} group commits, ${perSync.toFixed(1)} messages each, sync p50 ${ms(quantile(syncs, 0.5))} p99 ${ms(quantile(syncs, 0.99))}`,
    );
    out(
      `  writer: ${stats.writes} InfluxDB writes, ${perWrite.toFixed(0)} points each, p50 ${ms(quantile(writes, 0.5))} p99 ${ms(quantile(writes, 0.99))}; read ${ms(stats.readBatchMs)}, dedupe ${ms(stats.dedupeMs)}, commit ${ms(stats.commitMs)} in all`,
    );
    out(
      `  broker's event loop: timers late by p99 ${ms(stats.loopDelayP99Ms)}, at most ${ms(stats.loopDelayMaxMs)}`,
    );
    out(
      `CPU per message, µs (whole process, until queryable): bare aedes ${bareCpuUs.toFixed(0)}, DIY (Mosquitto + consumer) ${diyCpuUs.toFixed(0)}, fieldq ${fieldqCpuUs.toFixed(0)}`,
    );
    // What the load itself costs: no stack on this machine can be faster than its devices can publish.
    const cores = availableParallelism();
    const devicesCeiling = (cores * 1e6) / Math.max(1, devicesCpuUs);
    out(
      `the publishing devices (mqtt.js, this process): ${devicesCpuUs.toFixed(0)} µs of CPU per message, so ${cores} cores carry at most ${rate(devicesCeiling)} msg/s of this load before any broker runs`,
    );
    out(
      `ratios: acked / bare aedes ${(ackedRate / bareRate).toFixed(2)}, end to end / bare aedes ${(endToEndRate / bareRate).toFixed(2)}, end to end / raw InfluxDB ${(endToEndRate / raw1).toFixed(2)}, end to end / DIY ${(endToEndRate / diy.endToEndRate).toFixed(2)}`,
    );
    out(
      JSON.stringify({
        date: new Date().toISOString(),
        commit: gitCommit(),
        devices,
        messages,
        inflight,
        rate: paceRate,
        ackedPerS: Math.round(ackedRate),
        endToEndPerS: Math.round(endToEndRate),
        ackP50Ms: round(quantile(acks, 0.5)),
        ackP99Ms: round(quantile(acks, 0.99)),
        queryableP50Ms: round(quantile(toQueryable, 0.5), 0),
        queryableP99Ms: round(quantile(toQueryable, 0.99), 0),
        neverQueryable: missing,
        influxRawPerS: Math.round(raw1),
        influxRaw2PerS: Math.round(raw2),
        bareAedesPerS: Math.round(bareRate),
        bareAedesAckP50Ms: round(quantile(bareAcks, 0.5)),
        bareAedesAckP99Ms: round(quantile(bareAcks, 0.99)),
        ackedVsAedes: round(ackedRate / bareRate, 2),
        endToEndVsAedes: round(endToEndRate / bareRate, 2),
        endToEndVsInflux: round(endToEndRate / raw1, 2),
        diyAckedPerS: Math.round(diy.ackedRate),
        diyEndToEndPerS: Math.round(diy.endToEndRate),
        diyQueryableP50Ms: round(quantile(diy.toQueryable, 0.5), 0),
        diyQueryableP99Ms: round(quantile(diy.toQueryable, 0.99), 0),
        diyNeverQueryable: diy.missing,
        endToEndVsDiy: round(endToEndRate / diy.endToEndRate, 2),
        cpuUsPerMsg: {
          bareAedes: Math.round(bareCpuUs),
          diy: Math.round(diyCpuUs),
          fieldq: Math.round(fieldqCpuUs),
          devices: Math.round(devicesCpuUs),
        },
        devicesCeilingPerS: Math.round(devicesCeiling),
        journalSyncs: stats.syncs,
        messagesPerSync: round(perSync),
        syncP50Ms: round(quantile(syncs, 0.5)),
        syncP99Ms: round(quantile(syncs, 0.99)),
        influxWrites: stats.writes,
        pointsPerWrite: Math.round(perWrite),
        writeP50Ms: round(quantile(writes, 0.5)),
        loopDelayP99Ms: round(stats.loopDelayP99Ms),
        loopDelayMaxMs: round(stats.loopDelayMaxMs),
      }),
    );
    await fetch(`${influxUrl}/query`, {
      method: "POST",
      body: new URLSearchParams({ q: `DROP DATABASE "${database}"` }),
    });
  } finally {
    if (!process.env.FIELDQ_BENCH_INFLUX_URL) execFileSync("bash", ["scripts/influxd.sh", "stop", influxDir]);
    await rm(influxDir, { recursive: true, force: true });
    await rm(dataDir, { recursive: true, force: true });
  }
}

const children: Record<string, () => Promise<void>> = {
  fieldq: fieldqChild,
  aedes: aedesChild,
  diy: diyChild,
};
const entry = children[values.child ?? ""] ?? main;
entry().catch((error: unknown) => {
  process.stderr.write(`bench:ingest: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
