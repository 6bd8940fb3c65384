import { fork } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import mqtt from "mqtt";
import { deviceKey } from "../contract/device-key.js";
import { helloTopic, telemetryTopic } from "../contract/topics.js";
import {
  BENCH_SECRET,
  benchInflux,
  type ChildReport,
  connectPacket,
  drained,
  dropDatabase,
  forkStack,
  metricTotal,
  mib,
  out,
  publishPacket,
  quantile,
  runStackChild,
  sleep,
} from "./harness.js";

// npm run bench:fairness -- [--baseline 15] [--flood 20] [--rate 20] [--flood-drops N] [--seed 1]
// Issue 9's fair-share target, measured in one run against fieldq's broker + ingest + journal + InfluxDB
// writer in a child process (its memory alone), with fieldq's default limits:
// (a) device B sends QoS 1 telemetry at a steady pace: its ack p50/p99 and the broker's RSS after a GC;
// (b) device A floods QoS 0 as fast as TCP takes it (from a process of its own, so the flood does not slow
//     B's clock), connecting again whenever it is cut off, while B keeps its pace: B's ack p50/p99, what A
//     sent, what was dropped, whether A was cut off;
// (c) A gone, the journal drained, a GC: the broker's RSS against (a).
// Targets: B's ack p99 under the flood ≤ 2× baseline; RSS after ≤ 1.2× baseline. Exit code 1 when missed.

const TARGET_P99_RATIO = 2;
const TARGET_RSS_RATIO = 1.2;

const { values } = parseArgs({
  options: {
    baseline: { type: "string", default: "15" },
    flood: { type: "string", default: "20" },
    rate: { type: "string", default: "20" },
    seed: { type: "string", default: "1" },
    "flood-drops": { type: "string" },
    "stack-child": { type: "boolean" },
    flooder: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});

type FloodResult = {
  sent: number;
  bytes: number;
  /** When the broker first closed A's connection, seconds into the flood; null if it never did. */
  disconnectedAfterS: number | null;
  /** Connections A made (it connects again whenever it is cut off), and CONNECTs the broker refused or dropped. */
  sessions: number;
  refusedConnects: number;
};

/** One connection of device A: resolves with its CONNACK code (-1 when the socket closed first) and the socket. */
async function connectFlooder(port: number, id: string) {
  const socket = connect(port, "127.0.0.1");
  socket.setNoDelay(true);
  socket.on("error", () => {});
  const code = await new Promise<number>((resolve) => {
    socket.once("close", () => resolve(-1));
    socket.once("connect", () =>
      socket.write(connectPacket({ clientId: id, username: id, password: deviceKey(BENCH_SECRET, id) })),
    );
    socket.once("data", (data: Buffer) => resolve(data[3] ?? -1));
  });
  return { code, socket };
}

/** Device A, in its own process: QoS 0 telemetry as fast as the socket drains, connecting again when cut off. */
async function flooder(port: number, seconds: number): Promise<FloodResult> {
  const id = "fair-a-flooder";
  const started = performance.now();
  const timeLeft = () => performance.now() - started < seconds * 1000;
  const topic = telemetryTopic(id);
  let sent = 0;
  let bytes = 0;
  let sessions = 0;
  let refusedConnects = 0;
  let firstClose: number | null = null;
  while (timeLeft()) {
    const { code, socket } = await connectFlooder(port, id);
    if (code !== 0) {
      refusedConnects += 1;
      socket.destroy();
      await sleep(100);
      continue;
    }
    sessions += 1;
    let closed = false;
    socket.on("close", () => {
      closed = true;
      firstClose ??= performance.now();
    });
    socket.on("data", () => {});
    while (!closed && timeLeft()) {
      const chunk: Buffer[] = [];
      for (let i = 0; i < 200; i++) {
        sent += 1;
        const body = { ts: Date.now(), seq: sent, metrics: { snr_margin_db: 7.5, crc_errors: sent } };
        chunk.push(publishPacket(topic, Buffer.from(JSON.stringify(body))));
      }
      const data = Buffer.concat(chunk);
      bytes += data.length;
      if (!socket.write(data)) {
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            socket.off("drain", done);
            socket.off("close", done);
            resolve();
          };
          const timer = setTimeout(done, 1000);
          socket.once("drain", done);
          socket.once("close", done);
        });
      }
    }
    socket.destroy();
  }
  return {
    sent,
    bytes,
    disconnectedAfterS: firstClose === null ? null : (firstClose - started) / 1000,
    sessions,
    refusedConnects,
  };
}

function startFlooder(script: string, port: number, seconds: number): Promise<FloodResult> {
  const child = fork(script, ["--flooder", `${port}:${seconds}`], {
    execArgv: process.execArgv,
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  return once(child, "message").then(([message]) => message as FloodResult);
}

/** Device B: one QoS 1 telemetry every 1/rate s, on schedule whether or not the last was acknowledged. */
async function pacedDevice(
  client: mqtt.MqttClient,
  id: string,
  rate: number,
  seconds: number,
  seqFrom: number,
) {
  const latencies: number[] = [];
  let failed = 0;
  const pending: Promise<void>[] = [];
  const started = performance.now();
  const count = Math.round(rate * seconds);
  for (let i = 0; i < count; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const seq = seqFrom + i;
    const payload = JSON.stringify({ ts: Date.now(), seq, metrics: { snr_margin_db: 8, crc_errors: seq } });
    const t = performance.now();
    pending.push(
      client.publishAsync(telemetryTopic(id), payload, { qos: 1 }).then(
        () => {
          latencies.push(performance.now() - t);
        },
        () => {
          failed += 1;
        },
      ),
    );
  }
  await Promise.race([Promise.all(pending), sleep(60_000)]);
  const unanswered = count - latencies.length - failed;
  return { latencies: latencies.sort((a, b) => a - b), failed, unanswered, sent: count };
}

const ms = (n: number) => `${n.toFixed(1)} ms`;

async function main() {
  const script = process.argv[1] ?? "bench/fairness.ts";
  const baselineS = Number(values.baseline);
  const floodS = Number(values.flood);
  const rate = Number(values.rate);
  const seed = Number(values.seed);
  const influx = await benchInflux();
  const dataDir = await mkdtemp(join(tmpdir(), "fieldq-bench-fair-"));
  const database = `bench_fair_${seed}_${Date.now()}`;
  const stack = await forkStack(script, {
    FIELDQ_INFLUX_URL: influx.url,
    FIELDQ_INFLUX_DB: database,
    FIELDQ_DATA_DIR: dataDir,
    // A high value keeps A connected, to measure the token bucket alone.
    ...(values["flood-drops"] ? { FIELDQ_FLOOD_DROPS: values["flood-drops"] } : {}),
  });
  let failedChecks: string[] = [];
  try {
    out(`fieldq broker in a child process on port ${stack.port}; ${influx.url}, database ${database}`);
    const id = "fair-b-steady";
    const b = await mqtt.connectAsync(`mqtt://127.0.0.1:${stack.port}`, {
      clientId: id,
      username: id,
      password: deviceKey(BENCH_SECRET, id),
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    await b.publishAsync(
      helloTopic(id),
      JSON.stringify({
        kind: "modem",
        model: "FQ-M200",
        firmware: "2.4.1",
        hardware: "rev C",
        serial: "B-1",
      }),
      { qos: 1, retain: true },
    );
    await sleep(2000);

    out(`(a) baseline: B sends ${rate} QoS 1 msg/s for ${baselineS} s`);
    const base = await pacedDevice(b, id, rate, baselineS, 1);
    const baseMem = await stack.report(true);

    out(`(b) flood: A sends QoS 0 as fast as it can for ${floodS} s; B keeps its pace`);
    let peakRss = baseMem.rss;
    let sampling = true;
    const sampler = (async () => {
      while (sampling && stack.alive()) {
        peakRss = Math.max(peakRss, (await stack.report().catch(() => baseMem)).rss);
        await sleep(1000);
      }
    })();
    const flood = startFlooder(script, stack.port, floodS);
    await sleep(500);
    const during = await pacedDevice(b, id, rate, floodS - 1, 1_000_000);
    const a = await flood;
    sampling = false;
    await sampler;
    const floodMetrics = await stack.report();

    out("(c) after: A gone, journal drained, GC");
    const isDrained = await drained(stack, 180_000);
    const afterMem = await stack.report(true);
    await b.endAsync();

    const aAccepted =
      metricTotal(afterMem.metrics, "fieldq_messages_accepted_total") - base.sent - during.sent - 1;
    const throttled = metricTotal(floodMetrics.metrics, "fieldq_messages_throttled_total");
    const floodDisconnects = metricTotal(afterMem.metrics, "fieldq_flood_disconnects_total");
    const p = (run: typeof base, q: number) => quantile(run.latencies, q);
    const p99Ratio = p(during, 0.99) / Math.max(p(base, 0.99), 0.001);
    const rssRatio = afterMem.rss / baseMem.rss;

    const row = (label: string, value: string) => out(`  ${label.padEnd(44)} ${value}`);
    out("");
    row(
      "B ack p50 / p99, baseline",
      `${ms(p(base, 0.5))} / ${ms(p(base, 0.99))}  (${base.latencies.length} acks)`,
    );
    row(
      "B ack p50 / p99, under A's flood",
      `${ms(p(during, 0.5))} / ${ms(p(during, 0.99))}  (${during.latencies.length} acks)`,
    );
    row(
      "B publishes failed / unanswered",
      `${base.failed + during.failed} / ${base.unanswered + during.unanswered}`,
    );
    row("A: QoS 0 messages sent", `${a.sent} (${mib(a.bytes)} MiB, ${(a.sent / floodS).toFixed(0)}/s)`);
    row("A: accepted by ingest", `${aAccepted}`);
    row("A: dropped (throttled metric)", `${throttled}`);
    row("A: never read (sent − accepted − dropped)", `${Math.max(0, a.sent - aAccepted - throttled)}`);
    row(
      "A: disconnected by the broker",
      a.disconnectedAfterS === null
        ? "no"
        : `first after ${a.disconnectedAfterS.toFixed(1)} s (flood disconnects ${floodDisconnects})`,
    );
    row("A: sessions / CONNECTs refused", `${a.sessions} / ${a.refusedConnects}`);
    row(
      "broker RSS baseline / peak / after (MiB)",
      `${mib(baseMem.rss)} / ${mib(peakRss)} / ${mib(afterMem.rss)}`,
    );
    row("broker heap used baseline / after (MiB)", `${mib(baseMem.heapUsed)} / ${mib(afterMem.heapUsed)}`);
    row(
      "journal drained after the flood",
      isDrained ? "yes" : `no (${afterMem.backlogEntries} entries left)`,
    );
    row(
      `B ack p99 ratio (target ≤ ${TARGET_P99_RATIO})`,
      `${p99Ratio.toFixed(2)} ${p99Ratio <= TARGET_P99_RATIO ? "ok" : "MISSED"}`,
    );
    row(
      `RSS after / baseline (target ≤ ${TARGET_RSS_RATIO})`,
      `${rssRatio.toFixed(2)} ${rssRatio <= TARGET_RSS_RATIO ? "ok" : "MISSED"}`,
    );

    failedChecks = [
      ...(p99Ratio > TARGET_P99_RATIO ? ["ack_p99_ratio"] : []),
      ...(rssRatio > TARGET_RSS_RATIO ? ["rss_ratio"] : []),
      ...(base.failed + during.failed + base.unanswered + during.unanswered > 0 ? ["b_publish_failed"] : []),
      ...(stack.alive() ? [] : ["broker_crashed"]),
      ...(isDrained ? [] : ["journal_not_drained"]),
    ];
    const report = (r: ChildReport) => Number(mib(r.rss));
    out(
      JSON.stringify({
        bench: "fairness",
        seed,
        rate,
        baselineS,
        floodS,
        baseline: { ackP50Ms: p(base, 0.5), ackP99Ms: p(base, 0.99), rssMiB: report(baseMem) },
        flood: {
          ackP50Ms: p(during, 0.5),
          ackP99Ms: p(during, 0.99),
          aSent: a.sent,
          aAccepted,
          aThrottled: throttled,
          aDisconnectedAfterS: a.disconnectedAfterS,
          aSessions: a.sessions,
          aRefusedConnects: a.refusedConnects,
          peakRssMiB: Number(mib(peakRss)),
        },
        after: { rssMiB: report(afterMem), heapUsedMiB: Number(mib(afterMem.heapUsed)), drained: isDrained },
        ratios: { ackP99: Number(p99Ratio.toFixed(2)), rss: Number(rssRatio.toFixed(2)) },
        failed: failedChecks,
      }),
    );
  } finally {
    await stack.close();
    await dropDatabase(influx.url, database);
    await influx.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
  if (failedChecks.length > 0) process.exitCode = 1;
}

if (values.help) {
  out(
    "Usage: npm run bench:fairness -- [--baseline 15 s] [--flood 20 s] [--rate 20 msg/s of B] [--flood-drops N] [--seed 1]",
  );
  out("Set FIELDQ_BENCH_INFLUX_URL to use a running InfluxDB; otherwise a private influxd is started.");
} else if (values["stack-child"]) {
  await runStackChild();
} else if (values.flooder !== undefined) {
  const [port, seconds] = values.flooder.split(":").map(Number);
  process.send?.(await flooder(port ?? 0, seconds ?? 0));
  process.exit(0);
} else {
  await main().catch((error: unknown) => {
    process.stderr.write(`bench:fairness: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exitCode = 1;
  });
}
