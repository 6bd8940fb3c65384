import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { parseArgs } from "node:util";
import mqtt from "mqtt";
import { deviceKey } from "../contract/device-key.js";
import { eventTopic, faultTopic, helloTopic, telemetryTopic } from "../contract/topics.js";
import { grouped } from "../device-sim/progress.js";
import { createRandom, deriveSeed, type Random } from "../device-sim/random.js";
import { silentLogger } from "../observe/logger.js";
import { createMetrics } from "../observe/metrics.js";
import { startFieldq } from "../stack/start-stack.js";
import {
  BENCH_SECRET,
  benchConfig,
  benchInflux,
  dropDatabase,
  influxQuery,
  mib,
  out,
  quantile,
  sleep,
} from "./harness.js";

// npm run soak -- [--minutes 5] [--devices 200] [--interval 5] [--sample 15] [--seed 1]
// A steady fleet against the whole monitor in this process (startFieldq: broker + ingest + API): each device
// sends QoS 1 telemetry every --interval seconds and now and then a fault or an event; a viewer reads the API
// a few times per sample. Every --sample seconds: RSS and heap after a GC, event-loop delay p99, the journal's
// backlog and size on disk, and InfluxDB lag (a probe's publish → its point answers a query). At the end, a
// verdict per figure, flat or growing: the mean of the last third of the samples against the first third
// (the first sample, warm-up, left out) within 10% plus a small absolute allowance per figure.

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "5" },
    devices: { type: "string", default: "200" },
    interval: { type: "string", default: "5" },
    sample: { type: "string", default: "15" },
    seed: { type: "string", default: "1" },
    help: { type: "boolean", short: "h" },
  },
});

const VIEWER_TOKEN = "soak-viewer-token";
const gc = () => (globalThis as { gc?: () => void }).gc?.();

type Sample = {
  atS: number;
  rssMiB: number;
  heapMiB: number;
  loopP99Ms: number;
  backlogEntries: number;
  backlogMiB: number;
  journalDiskMiB: number;
  influxLagMs: number;
  acked: number;
  apiP99Ms: number;
};

/** Figures judged flat or growing, with the absolute allowance on top of 10%. */
const FIGURES: { key: keyof Sample; label: string; slack: number }[] = [
  { key: "rssMiB", label: "RSS (MiB)", slack: 10 },
  { key: "heapMiB", label: "heap used (MiB)", slack: 5 },
  { key: "loopP99Ms", label: "event-loop delay p99 (ms)", slack: 20 },
  { key: "backlogEntries", label: "journal backlog (entries)", slack: 200 },
  // LevelDB keeps up to its 4 MiB write buffer in its log before a compaction.
  { key: "journalDiskMiB", label: "journal on disk (MiB)", slack: 4 },
  // A probe waits up to one flush interval (1 s) for the writer, wherever in it the sample falls.
  { key: "influxLagMs", label: "InfluxDB lag (ms)", slack: 1000 },
  { key: "apiP99Ms", label: "API read p99 (ms)", slack: 50 },
];
const TOLERANCE = 0.1;

async function diskBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, entry.name);
    total += entry.isDirectory() ? await diskBytes(path) : (await stat(path).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

type Device = { id: string; client: mqtt.MqttClient; seq: number; random: Random };

async function main() {
  const minutes = Number(values.minutes);
  const devices = Number(values.devices);
  const intervalS = Number(values.interval);
  const sampleS = Number(values.sample);
  const seed = Number(values.seed);
  const influx = await benchInflux();
  const dataDir = await mkdtemp(join(tmpdir(), "fieldq-soak-"));
  const database = `soak_${seed}_${Date.now()}`;
  const config = benchConfig({
    FIELDQ_INFLUX_URL: influx.url,
    FIELDQ_INFLUX_DB: database,
    FIELDQ_DATA_DIR: dataDir,
    FIELDQ_API_TOKENS: `viewer:${VIEWER_TOKEN}`,
    // The whole fleet comes from one address here.
    FIELDQ_MAX_CONNECTIONS_PER_IP: String(devices + 10),
  });
  const metrics = createMetrics();
  const stack = await startFieldq(config, { logger: silentLogger, metrics }, { broker: true, api: true });
  const url = `mqtt://127.0.0.1:${stack.mqttPort}`;
  const connectDevice = (id: string) =>
    mqtt.connectAsync(url, {
      clientId: id,
      username: id,
      password: deviceKey(BENCH_SECRET, id),
      protocolVersion: 4,
      reconnectPeriod: 1000,
    });
  let failed = 0;
  let acked = 0;
  const fleet: Device[] = [];
  let sampling = true;
  const samples: Sample[] = [];
  let storedCheck = { acked: 0, stored: 0 };
  try {
    out(
      `soak: ${devices} devices, telemetry every ${intervalS} s, for ${minutes} min, sampled every ${sampleS} s; ${influx.url} ${database}`,
    );
    for (let i = 0; i < devices; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, devices - i) }, async (_, k) => {
          const id = `soak-${String(i + k).padStart(4, "0")}`;
          return { id, client: await connectDevice(id), seq: 0, random: createRandom(deriveSeed(seed, id)) };
        }),
      );
      fleet.push(...batch);
    }
    await Promise.all(
      fleet.map((d) =>
        d.client.publishAsync(
          helloTopic(d.id),
          JSON.stringify({
            kind: "modem",
            model: d.random.pick(["FQ-M200", "FQ-M300"] as const),
            firmware: d.random.pick(["2.4.1", "2.5.0"] as const),
            hardware: "rev C",
            serial: d.id,
          }),
          { qos: 1, retain: true },
        ),
      ),
    );
    const publish = async (client: mqtt.MqttClient, topic: string, body: unknown) => {
      try {
        await client.publishAsync(topic, JSON.stringify(body), { qos: 1 });
        acked += 1;
        return true;
      } catch {
        failed += 1;
        return false;
      }
    };
    let telemetryAcked = 0;
    const endAt = performance.now() + minutes * 60_000;
    const deviceLoop = async (d: Device, offsetMs: number) => {
      await sleep(offsetMs);
      while (performance.now() < endAt) {
        const tickStarted = performance.now();
        d.seq += 1;
        const ts = Date.now();
        const ok = await publish(d.client, telemetryTopic(d.id), {
          ts,
          seq: d.seq,
          metrics: {
            snr_margin_db: d.random.normal(8, 1),
            crc_errors: d.random.int(0, 50),
            wan_up: d.random.chance(0.99),
          },
        });
        if (ok) telemetryAcked += 1;
        if (d.random.chance(0.02)) {
          d.seq += 1;
          await publish(d.client, faultTopic(d.id), {
            ts,
            seq: d.seq,
            code: d.random.pick(["DSL_RESYNC", "WAN_DOWN", "DNS_TIMEOUT"] as const),
            severity: "warning",
            message: "soak fault",
          });
        }
        if (d.random.chance(0.01)) {
          d.seq += 1;
          await publish(d.client, eventTopic(d.id), {
            ts,
            seq: d.seq,
            type: "reboot",
            data: { reason: "watchdog" },
          });
        }
        await sleep(Math.max(0, intervalS * 1000 - (performance.now() - tickStarted)));
      }
    };

    const probeId = "soak-probe";
    const probe = await connectDevice(probeId);
    let probeSeq = 0;
    const influxLag = async (): Promise<number> => {
      probeSeq += 1;
      const seq = probeSeq;
      const published = performance.now();
      await probe.publishAsync(
        telemetryTopic(probeId),
        JSON.stringify({ ts: Date.now(), seq, metrics: { probe: 1 } }),
        { qos: 1 },
      );
      while (performance.now() - published < 60_000) {
        const rows = await influxQuery(
          influx.url,
          database,
          `SELECT "seq" FROM "raw"."telemetry" WHERE "device"::tag = '${probeId}' AND "seq" = ${seq}`,
        ).catch(() => []);
        if (rows.length > 0) return performance.now() - published;
        await sleep(50);
      }
      return Number.NaN;
    };
    const apiLatencies: number[] = [];
    const apiRead = async (random: Random) => {
      const id = fleet[random.int(0, fleet.length - 1)]?.id ?? "soak-0000";
      const path = random.pick([
        "/api/v1/devices",
        "/api/v1/fleet/summary",
        "/api/v1/issues",
        `/api/v1/devices/${id}/summary`,
        `/api/v1/devices/${id}/telemetry`,
      ] as const);
      const started = performance.now();
      const response = await fetch(`${stack.apiUrl}${path}`, {
        headers: { authorization: `Bearer ${VIEWER_TOKEN}` },
      });
      await response.arrayBuffer();
      apiLatencies.push(performance.now() - started);
      if (response.status >= 500) failed += 1;
    };

    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const started = performance.now();
    const sampler = (async () => {
      const random = createRandom(deriveSeed(seed, "viewer"));
      while (sampling) {
        const nextAt = performance.now() + sampleS * 1000;
        while (sampling && performance.now() < nextAt - 1000) {
          await apiRead(random);
          await sleep(Math.min(3000, Math.max(0, nextAt - 1000 - performance.now())));
        }
        if (!sampling) break;
        const lagMs = await influxLag();
        gc();
        const memory = process.memoryUsage();
        const sortedApi = apiLatencies.splice(0).sort((a, b) => a - b);
        const sample: Sample = {
          atS: (performance.now() - started) / 1000,
          rssMiB: Number(mib(memory.rss)),
          heapMiB: Number(mib(memory.heapUsed)),
          loopP99Ms: loop.percentile(99) / 1e6,
          backlogEntries: (await metrics.journalBacklogEntries.get()).values[0]?.value ?? 0,
          backlogMiB: Number(mib((await metrics.journalBacklogBytes.get()).values[0]?.value ?? 0)),
          journalDiskMiB: Number(mib(await diskBytes(join(dataDir, "journal")))),
          influxLagMs: lagMs,
          acked,
          apiP99Ms: quantile(sortedApi, 0.99),
        };
        loop.reset();
        samples.push(sample);
        out(
          `  ${`${(sample.atS / 60).toFixed(1)} min`.padStart(9)}  RSS ${sample.rssMiB.toFixed(0).padStart(4)} MiB  heap ${sample.heapMiB.toFixed(0).padStart(4)} MiB  loop p99 ${sample.loopP99Ms.toFixed(0).padStart(4)} ms  backlog ${String(sample.backlogEntries).padStart(5)} (${sample.backlogMiB.toFixed(1)} MiB)  journal ${sample.journalDiskMiB.toFixed(1).padStart(6)} MiB  lag ${sample.influxLagMs.toFixed(0).padStart(5)} ms  API p99 ${sample.apiP99Ms.toFixed(0).padStart(4)} ms  acked ${grouped(sample.acked)}  failed ${failed}`,
        );
      }
    })();
    await Promise.all(fleet.map((d, i) => deviceLoop(d, (i * intervalS * 1000) / fleet.length)));
    sampling = false;
    await sampler;
    loop.disable();

    // Every acknowledged telemetry sample stored once (the journal drained first).
    const drainDeadline = performance.now() + 120_000;
    while (
      ((await metrics.journalBacklogEntries.get()).values[0]?.value ?? 0) > 0 &&
      performance.now() < drainDeadline
    )
      await sleep(200);
    await sleep(1500);
    const counted = await influxQuery(
      influx.url,
      database,
      `SELECT count("seq") FROM "raw"."telemetry" WHERE "device"::tag =~ /^soak-[0-9]/`,
    );
    storedCheck = { acked: telemetryAcked, stored: Number(counted[0]?.values[0]?.[1] ?? 0) };
    await Promise.all([...fleet.map((d) => d.client), probe].map((c) => c.endAsync(true)));
  } finally {
    sampling = false;
    await stack.close();
    await dropDatabase(influx.url, database);
    await influx.stop();
    await rm(dataDir, { recursive: true, force: true });
  }

  const judged = samples.slice(1);
  const third = Math.max(1, Math.floor(judged.length / 3));
  const mean = (list: Sample[], key: keyof Sample) =>
    list.reduce((sum, s) => sum + (Number.isFinite(s[key]) ? s[key] : 0), 0) / Math.max(1, list.length);
  const verdicts = FIGURES.map(({ key, label, slack }) => {
    const first = mean(judged.slice(0, third), key);
    const last = mean(judged.slice(-third), key);
    const growing = judged.length >= 3 && last > first * (1 + TOLERANCE) + slack;
    return {
      key,
      label,
      first,
      last,
      verdict: judged.length < 3 ? "too short" : growing ? "growing" : "flat",
    };
  });
  out("");
  out(
    `verdict: last third against first third of ${judged.length} samples, growing when over +${TOLERANCE * 100}% and the allowance`,
  );
  for (const v of verdicts)
    out(
      `  ${v.label.padEnd(28)} ${v.first.toFixed(1).padStart(9)} → ${v.last.toFixed(1).padStart(9)}   ${v.verdict}`,
    );
  const lost = storedCheck.acked - storedCheck.stored;
  const lagLost = samples.filter((s) => !Number.isFinite(s.influxLagMs)).length;
  out(
    `  acknowledged messages ${grouped(acked)}, failed ${failed}; telemetry acknowledged ${grouped(storedCheck.acked)}, stored ${grouped(storedCheck.stored)}; probes never queryable ${lagLost}`,
  );
  const failedChecks = [
    ...verdicts.filter((v) => v.verdict === "growing").map((v) => `growing:${v.key}`),
    ...(failed > 0 ? ["failed_requests"] : []),
    ...(lost !== 0 ? ["telemetry_not_stored_once"] : []),
    ...(lagLost > 0 ? ["probe_not_queryable"] : []),
  ];
  out(
    JSON.stringify({
      bench: "soak",
      seed,
      minutes,
      devices,
      intervalS,
      samples: samples.length,
      acked,
      failed,
      telemetry: storedCheck,
      figures: Object.fromEntries(
        verdicts.map((v) => [
          v.key,
          { first: Number(v.first.toFixed(1)), last: Number(v.last.toFixed(1)), verdict: v.verdict },
        ]),
      ),
      failedChecks,
    }),
  );
  if (failedChecks.length > 0) process.exitCode = 1;
}

if (values.help) {
  out("Usage: npm run soak -- [--minutes 5] [--devices 200] [--interval 5 s] [--sample 15 s] [--seed 1]");
  out("Set FIELDQ_BENCH_INFLUX_URL to use a running InfluxDB; otherwise a private influxd is started.");
  out(
    "Exit code 1 when a figure grows, a request fails, or an acknowledged sample is not stored exactly once.",
  );
} else {
  await main().catch((error: unknown) => {
    process.stderr.write(`soak: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exitCode = 1;
  });
}
