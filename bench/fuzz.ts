import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import mqtt from "mqtt";
import { deviceKey } from "../contract/device-key.js";
import {
  commandResultTopic,
  errorsTopic,
  helloTopic,
  telemetryTopic,
  uplinkTopic,
} from "../contract/topics.js";
import { grouped } from "../device-sim/progress.js";
import { createRandom, deriveSeed } from "../device-sim/random.js";
import { decodeMessage } from "../ingest/decode.js";
import { type Outcome, outcomeExpected, packetCase, playPacketCase } from "./fuzz-packets.js";
import { type Channel, type FuzzCase, fuzzCase } from "./fuzz-payloads.js";
import {
  BENCH_SECRET,
  benchInflux,
  type ChildReport,
  drained,
  dropDatabase,
  forkStack,
  influxQuery,
  metricTotal,
  mib,
  out,
  runStackChild,
  type StackChild,
  sleep,
} from "./harness.js";

// npm run fuzz -- [--count 100000] [--packets 3000] [--seed 1]
// Generated payloads (fuzz-payloads.ts) through real MQTT connections (QoS 1) to fieldq's broker + ingest +
// journal + InfluxDB writer in a child process, interleaved with valid telemetry of other devices; then
// malformed packets over raw TCP (fuzz-packets.ts). Afterwards, the journal drained: every valid message
// stored exactly once, nothing stored from a refused payload, the broker alive and a fresh device served.
// The per-device rate and the per-address limits are raised so the fair share does not refuse the fuzz.

const FUZZ_DEVICES = 16;
const IN_FLIGHT = 8;
const GOOD_DEVICES = 4;
/** A valid message from a good device after every this many fuzz messages. */
const GOOD_EVERY = 10;
const MAX_PAYLOAD = 64 * 1024;
/** Fuzz markers: case i's k-th seq. Far from the good devices' seqs. */
const marker = (i: number, k: number) => 5_000_000_000 + i * 4 + k;
const PUBLISH_TIMEOUT_MS = 10_000;

const { values } = parseArgs({
  options: {
    count: { type: "string", default: "100000" },
    packets: { type: "string", default: "3000" },
    seed: { type: "string", default: "1" },
    "stack-child": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  },
});

const STACK_ENV = {
  FIELDQ_DEVICE_RATE: "1000000",
  FIELDQ_DEVICE_BURST: "1000000",
  FIELDQ_FLOOD_DROPS: "1000000",
  FIELDQ_MAX_CONNECTIONS_PER_IP: "100000",
  FIELDQ_AUTH_FAILURES_PER_MINUTE: "1000000",
  FIELDQ_CONNECT_TIMEOUT: "2s",
};

const connectDevice = async (port: number, id: string, reconnect: boolean) =>
  mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
    clientId: id,
    username: id,
    password: deviceKey(BENCH_SECRET, id),
    protocolVersion: 4,
    reconnectPeriod: reconnect ? 500 : 0,
    connectTimeout: 5_000,
  });

function topicFor(id: string, channel: Channel): string {
  if (channel === "cmd-result") return commandResultTopic(id, "c-1");
  if (channel === "bogus") return `fq/v1/${id}/bogus`;
  return uplinkTopic(id, channel);
}

const withTimeout = <T>(work: Promise<T>, ms: number) =>
  Promise.race([work, sleep(ms).then(() => Promise.reject(new Error("no PUBACK")))]);

const increment = (tally: Map<string, number>, key: string, by = 1) =>
  tally.set(key, (tally.get(key) ?? 0) + by);
const table = (tally: Map<string, number>) =>
  [...tally.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));

type PayloadResult = {
  sent: number;
  seconds: number;
  good: Map<string, number[]>;
  noPuback: number;
  goodNoPuback: number;
  disconnects: number;
  refusals: Map<string, number>;
  expectedRefusals: Map<string, number>;
  categories: Map<string, number>;
  /** Marker seq → the case it identifies, refused or accepted as the contract says. */
  markers: Map<number, { category: string; refuse: boolean; channel: Channel; snippet: string }>;
  /** Seqs two cases may have carried (one by a flipped digit): left out of the storage checks. */
  ambiguous: number;
};

async function payloadFuzz(stack: StackChild, count: number, seed: number): Promise<PayloadResult> {
  const fuzzIds = Array.from({ length: FUZZ_DEVICES }, (_, i) => `fz-fuzz-${i}`);
  const goodIds = Array.from({ length: GOOD_DEVICES }, (_, i) => `fz-good-${i}`);
  const refusals = new Map<string, number>();
  let disconnects = 0;
  const fuzzClients = await Promise.all(fuzzIds.map((id) => connectDevice(stack.port, id, true)));
  for (const [i, client] of fuzzClients.entries()) {
    const id = fuzzIds[i] ?? "";
    await client.subscribeAsync(errorsTopic(id), { qos: 0 });
    client.on("message", (_topic, payload) => {
      const reason = (JSON.parse(payload.toString()) as { reason?: string }).reason ?? "?";
      increment(refusals, reason);
    });
    client.on("offline", () => {
      disconnects += 1;
    });
  }
  const goodClients = await Promise.all(goodIds.map((id) => connectDevice(stack.port, id, true)));
  const good = new Map<string, number[]>(goodIds.map((id) => [id, []]));
  const goodSeq = new Map<string, number>(goodIds.map((id) => [id, 0]));
  let goodNoPuback = 0;
  const publishGood = async (g: number) => {
    const id = goodIds[g] ?? "";
    const client = goodClients[g];
    if (!client) return;
    const seq = (goodSeq.get(id) ?? 0) + 1;
    goodSeq.set(id, seq);
    // The documented metrics, with the types the docs give them: another device's flipped types must not cost them.
    const payload = JSON.stringify({
      ts: Date.now(),
      seq,
      metrics: { snr_margin_db: 7 + (seq % 10) / 4, sync_rate_kbps: 52000 + seq, wan_up: seq % 2 === 0 },
    });
    try {
      await withTimeout(client.publishAsync(telemetryTopic(id), payload, { qos: 1 }), PUBLISH_TIMEOUT_MS);
      good.get(id)?.push(seq);
    } catch {
      goodNoPuback += 1;
    }
  };
  // Hellos first, and one sample each, so the good devices' metric names and labels are known before the fuzz.
  await Promise.all(
    goodClients.map((client, g) =>
      client.publishAsync(
        helloTopic(goodIds[g] ?? ""),
        JSON.stringify({
          kind: "modem",
          model: "FQ-M200",
          firmware: "2.4.1",
          hardware: "rev C",
          serial: `G-${g}`,
        }),
        { qos: 1, retain: true },
      ),
    ),
  );
  await Promise.all(goodIds.map((_, g) => publishGood(g)));

  const expectedRefusals = new Map<string, number>();
  const categories = new Map<string, number>();
  const markers: PayloadResult["markers"] = new Map();
  const ambiguous = new Set<number>();
  let next = 0;
  let noPuback = 0;
  let goodTurn = 0;
  const started = performance.now();
  let lastProgress = started;
  const worker = async (w: number) => {
    const client = fuzzClients[w % FUZZ_DEVICES];
    const id = fuzzIds[w % FUZZ_DEVICES] ?? "";
    if (!client) return;
    while (next < count && stack.alive()) {
      const i = next++;
      const c: FuzzCase = fuzzCase(
        createRandom(deriveSeed(seed, `case-${i}`)),
        (k) => marker(i, k),
        MAX_PAYLOAD,
      );
      const topic = topicFor(id, c.channel);
      const decoded = decodeMessage(topic, c.payload, MAX_PAYLOAD);
      const refuse = c.mustRefuse || !decoded.ok;
      if (!decoded.ok) increment(expectedRefusals, decoded.refusal.reason);
      else if (c.mustRefuse) increment(expectedRefusals, "(contract) invalid_json or invalid_schema");
      increment(categories, `${c.category} → ${refuse ? "refused" : "accepted"}`);
      const snippet = JSON.stringify(c.payload.subarray(0, 160).toString());
      for (const seq of c.markers)
        markers.set(seq, { category: c.category, refuse, channel: c.channel, snippet });
      for (const seq of c.claims) ambiguous.add(seq);
      try {
        await withTimeout(
          client.publishAsync(topic, c.payload, { qos: 1, retain: c.retain }),
          PUBLISH_TIMEOUT_MS,
        );
      } catch {
        noPuback += 1;
      }
      if (i % GOOD_EVERY === 0) await publishGood(goodTurn++ % GOOD_DEVICES);
      if (performance.now() - lastProgress > 5_000) {
        lastProgress = performance.now();
        const rate = next / ((lastProgress - started) / 1000);
        out(
          `  payloads: ${grouped(next)} / ${grouped(count)} (${grouped(rate)}/s; no PUBACK ${noPuback}, disconnects ${disconnects})`,
        );
      }
    }
  };
  await Promise.all(Array.from({ length: FUZZ_DEVICES * IN_FLIGHT }, (_, w) => worker(w)));
  const seconds = (performance.now() - started) / 1000;
  // Refusals are QoS 0 and may trail the last PUBACK.
  await sleep(1_000);
  await Promise.all([...fuzzClients, ...goodClients].map((c) => c.endAsync(true).catch(() => {})));
  return {
    sent: Math.min(next, count),
    seconds,
    good,
    noPuback,
    goodNoPuback,
    disconnects,
    refusals,
    expectedRefusals,
    categories,
    markers: new Map([...markers].filter(([seq]) => !ambiguous.has(seq))),
    ambiguous: ambiguous.size,
  };
}

type PacketResult = {
  cases: number;
  outcomes: Map<string, number>;
  unexpected: Map<string, number>;
  examples: string[];
};

async function packetFuzz(stack: StackChild, cases: number, seed: number): Promise<PacketResult> {
  const outcomes = new Map<string, number>();
  const unexpected = new Map<string, number>();
  const examples: string[] = [];
  let next = 0;
  let lastProgress = performance.now();
  const worker = async () => {
    while (next < cases && stack.alive()) {
      const i = next++;
      const id = `fz-pkt-${i}`;
      const c = packetCase(createRandom(deriveSeed(seed, `packet-${i}`)), id);
      const outcome: Outcome = await playPacketCase(stack.port, id, c, 400);
      increment(outcomes, `${c.family}: ${outcome}`);
      if (!outcomeExpected(c, outcome)) {
        increment(unexpected, `${c.family}: ${outcome} (expected ${c.expect.join(" or ")})`);
        if (examples.length < 20)
          examples.push(
            `case ${i} ${c.family}: ${outcome}; bytes ${c.bytes.subarray(0, 48).toString("hex")}…`,
          );
      }
      if (performance.now() - lastProgress > 5_000) {
        lastProgress = performance.now();
        out(`  packets: ${grouped(next)} / ${grouped(cases)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  return { cases: Math.min(next, cases), outcomes, unexpected, examples };
}

/** A device that has never been seen connects, publishes one valid sample and gets its PUBACK. */
async function freshDevice(port: number, id: string): Promise<boolean> {
  try {
    const client = await connectDevice(port, id, false);
    await withTimeout(
      client.publishAsync(
        telemetryTopic(id),
        JSON.stringify({ ts: Date.now(), seq: 1, metrics: { snr_margin_db: 9 } }),
        { qos: 1 },
      ),
      10_000,
    );
    await client.endAsync();
    return true;
  } catch {
    return false;
  }
}

async function storedSeqs(url: string, database: string, where: string): Promise<Map<string, number[]>> {
  const byDevice = new Map<string, number[]>();
  for (const measurement of ['"raw"."telemetry"', '"long"."fault"', '"long"."event"', '"long"."command"']) {
    const series = await influxQuery(
      url,
      database,
      `SELECT "seq" FROM ${measurement} WHERE ${where} GROUP BY "device"`,
    );
    for (const s of series) {
      const device = s.tags?.device ?? "?";
      const list = byDevice.get(device) ?? [];
      for (const row of s.values) if (typeof row[1] === "number") list.push(row[1]);
      byDevice.set(device, list);
    }
  }
  return byDevice;
}

async function main() {
  const script = process.argv[1] ?? "bench/fuzz.ts";
  const count = Number(values.count);
  const packets = Number(values.packets);
  const seed = Number(values.seed);
  const influx = await benchInflux();
  const dataDir = await mkdtemp(join(tmpdir(), "fieldq-fuzz-"));
  const database = `fuzz_${seed}_${Date.now()}`;
  const stack = await forkStack(script, {
    ...STACK_ENV,
    FIELDQ_INFLUX_URL: influx.url,
    FIELDQ_INFLUX_DB: database,
    FIELDQ_DATA_DIR: dataDir,
  });
  let crashed: string | undefined;
  stack.exited.then((how) => {
    crashed = how;
  });
  const failed: string[] = [];
  try {
    out(
      `fuzz: ${grouped(count)} payloads, ${grouped(packets)} packets, seed ${seed}; broker child on port ${stack.port}; ${influx.url} ${database}`,
    );
    const before: ChildReport = await stack.report(true);
    const p = await payloadFuzz(stack, count, seed);
    const isDrained = crashed === undefined && (await drained(stack, 120_000));
    const afterPayloads = crashed === undefined ? await stack.report(true) : before;
    out(
      `  payloads done in ${p.seconds.toFixed(1)} s; journal ${isDrained ? "drained" : "NOT drained"}; packets next`,
    );
    const k = crashed === undefined ? await packetFuzz(stack, packets, seed) : undefined;
    const alive = crashed === undefined && stack.alive();
    const fresh = alive && (await freshDevice(stack.port, "fz-fresh-0"));
    const after: ChildReport = alive ? await stack.report(true) : afterPayloads;
    if (alive) await drained(stack, 60_000);

    // Storage: the good devices' seqs exactly once; no marker of a refused case.
    const good = await storedSeqs(influx.url, database, `"device"::tag =~ /^fz-good-/`);
    let goodAcked = 0;
    let goodMissing = 0;
    let goodDuplicated = 0;
    let goodUnexpected = 0;
    const missingExamples: string[] = [];
    for (const [id, acked] of p.good) {
      goodAcked += acked.length;
      const stored = good.get(id) ?? [];
      const counts = new Map<number, number>();
      for (const seq of stored) counts.set(seq, (counts.get(seq) ?? 0) + 1);
      for (const seq of acked) {
        const n = counts.get(seq) ?? 0;
        if (n === 0) {
          goodMissing += 1;
          if (missingExamples.length < 5) missingExamples.push(`${id} seq ${seq}`);
        }
        if (n > 1) goodDuplicated += 1;
      }
      const ackedSet = new Set(acked);
      goodUnexpected += [...counts.keys()].filter((seq) => !ackedSet.has(seq)).length;
    }
    const fuzzStored = await storedSeqs(influx.url, database, `"device"::tag =~ /^fz-fuzz-/`);
    const storedRefused = new Map<string, number>();
    const storedMarkers = new Set<number>();
    const examples: string[] = [];
    let storedUnmarked = 0;
    for (const seqs of fuzzStored.values()) {
      for (const seq of seqs) {
        const m = p.markers.get(seq);
        if (!m) storedUnmarked += 1;
        else {
          storedMarkers.add(seq);
          if (m.refuse) {
            increment(storedRefused, m.category);
            if (examples.length < 6)
              examples.push(`stored, should be refused: seq ${seq} on ${m.channel}: ${m.snippet}`);
          }
        }
      }
    }
    const acceptedNotStored = new Map<string, number>();
    for (const [seq, m] of p.markers) {
      if (!m.refuse && m.channel !== "bogus" && !storedMarkers.has(seq)) {
        increment(acceptedNotStored, m.category);
        if (examples.length < 12)
          examples.push(`accepted, not stored: seq ${seq} on ${m.channel}: ${m.snippet}`);
      }
    }
    const refusedTotal = [...p.refusals.values()].reduce((a, b) => a + b, 0);
    const serverOnly = ["over_limit", "storage_refused", "rate_limited"].reduce(
      (s, r) => s + (p.refusals.get(r) ?? 0),
      0,
    );

    out("");
    out(
      `payload fuzz: ${grouped(p.sent)} payloads in ${p.seconds.toFixed(1)} s (${grouped(p.sent / p.seconds)}/s, with ${grouped(goodAcked)} valid messages of ${GOOD_DEVICES} other devices)`,
    );
    out(
      "  refusals on the errors topics, by reason (fieldq)   vs   expected by the decoder and the contract:",
    );
    const reasons = new Set([...p.refusals.keys(), ...p.expectedRefusals.keys()]);
    for (const reason of [...reasons].sort()) {
      out(
        `    ${reason.padEnd(44)} ${String(p.refusals.get(reason) ?? 0).padStart(8)}   ${String(p.expectedRefusals.get(reason) ?? 0).padStart(8)}`,
      );
    }
    out(`  categories (as the contract judges them):`);
    for (const [category, n] of table(p.categories))
      out(`    ${category.padEnd(44)} ${String(n).padStart(8)}`);
    out(
      `  no PUBACK within ${PUBLISH_TIMEOUT_MS / 1000} s: fuzz ${p.noPuback}, valid ${p.goodNoPuback}; fuzz client disconnects ${p.disconnects}`,
    );
    out(
      `  valid messages acknowledged ${goodAcked}: stored once ${goodAcked - goodMissing - goodDuplicated}, missing ${goodMissing}, duplicated ${goodDuplicated}, stored but never acknowledged ${goodUnexpected}${missingExamples.length ? ` (e.g. ${missingExamples.join(", ")})` : ""}`,
    );
    out(
      `  stored from refused payloads: ${[...storedRefused.values()].reduce((a, b) => a + b, 0)}${
        storedRefused.size
          ? ` (${table(storedRefused)
              .map(([c, n]) => `${c} ${n}`)
              .join(", ")})`
          : ""
      }`,
    );
    out(
      `  accepted by the contract but not stored: ${[...acceptedNotStored.values()].reduce((a, b) => a + b, 0)} (fieldq refused ${serverOnly} for limits or storage)${
        acceptedNotStored.size
          ? `: ${table(acceptedNotStored)
              .slice(0, 8)
              .map(([c, n]) => `${c} ${n}`)
              .join(", ")}`
          : ""
      }`,
    );
    out(
      `  fuzz points stored whose seq a mutation changed: ${storedUnmarked}; seqs left out as two cases may carry them: ${p.ambiguous}`,
    );
    for (const example of examples) out(`    ${example}`);
    if (k) {
      out(`packet fuzz: ${grouped(k.cases)} cases; outcomes:`);
      for (const [outcome, n] of table(k.outcomes)) out(`    ${outcome.padEnd(90)} ${String(n).padStart(6)}`);
      out(`  outside what the spec and docs allow: ${[...k.unexpected.values()].reduce((a, b) => a + b, 0)}`);
      for (const [what, n] of table(k.unexpected)) out(`    ${what} ×${n}`);
      for (const example of k.examples.slice(0, 8)) out(`    ${example}`);
    }
    out(
      `broker: ${crashed ? `CRASHED (${crashed})` : "alive"}; a fresh device ${fresh ? "connected and was acknowledged" : "was NOT served"}`,
    );
    out(
      `broker memory after GC: RSS ${mib(before.rss)} → ${mib(afterPayloads.rss)} (payloads) → ${mib(after.rss)} MiB (packets); heap ${mib(before.heapUsed)} → ${mib(after.heapUsed)} MiB`,
    );
    out(
      `refused messages (metric): ${metricTotal(afterPayloads.metrics, "fieldq_messages_refused_total")}, errors received ${refusedTotal}`,
    );

    if (crashed || !alive) failed.push("crash");
    if (!fresh) failed.push("fresh_device_not_served");
    if (!isDrained) failed.push("journal_not_drained");
    if (goodMissing + goodDuplicated + p.goodNoPuback > 0) failed.push("valid_not_stored_exactly_once");
    if (storedRefused.size > 0) failed.push("stored_from_refused");
    out(
      JSON.stringify({
        bench: "fuzz",
        seed,
        payloads: p.sent,
        seconds: Number(p.seconds.toFixed(1)),
        perSecond: Math.round(p.sent / p.seconds),
        crashes: crashed || !alive ? 1 : 0,
        freshDevice: fresh,
        refusals: Object.fromEntries(p.refusals),
        expectedRefusals: Object.fromEntries(p.expectedRefusals),
        valid: {
          acknowledged: goodAcked,
          missing: goodMissing,
          duplicated: goodDuplicated,
          noPuback: p.goodNoPuback,
        },
        storedFromRefused: Object.fromEntries(storedRefused),
        acceptedNotStored: Object.fromEntries(acceptedNotStored),
        packets: k ? { cases: k.cases, unexpected: Object.fromEntries(k.unexpected) } : null,
        memoryMiB: {
          rssBefore: Number(mib(before.rss)),
          rssAfter: Number(mib(after.rss)),
          heapBefore: Number(mib(before.heapUsed)),
          heapAfter: Number(mib(after.heapUsed)),
        },
        failed,
      }),
    );
  } finally {
    await stack.close();
    await dropDatabase(influx.url, database);
    await influx.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
  if (failed.length > 0) process.exitCode = 1;
}

if (values.help) {
  out("Usage: npm run fuzz -- [--count 100000 payloads] [--packets 3000 raw TCP cases] [--seed 1]");
  out("Set FIELDQ_BENCH_INFLUX_URL to use a running InfluxDB; otherwise a private influxd is started.");
  out("Exit code 1 when the broker crashed, a fresh device is not served, the journal does not drain,");
  out("a valid message is not stored exactly once, or anything of a refused payload is stored.");
} else if (values["stack-child"]) {
  await runStackChild();
} else {
  await main().catch((error: unknown) => {
    process.stderr.write(`fuzz: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exitCode = 1;
  });
}
