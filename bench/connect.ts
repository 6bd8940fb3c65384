import { execFileSync, fork } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import type { DevicesReport, DevicesTask } from "./connect-devices.js";
import {
  benchInflux,
  drained,
  dropDatabase,
  forkStack,
  mib,
  quantile,
  runBareAedesChild,
  runStackChild,
  type StackChild,
  sleep,
} from "./harness.js";

// npm run bench:connect -- [--devices 10000] [--clients 4] [--concurrency 100] [--slice 1000] [--no-retain]
//                          [--no-bare] [--cpu-prof DIR]
// A connect storm, as after a broker restart: fieldq's broker + ingest (startIngestBroker, its own InfluxDB
// and journal) in a child process, and `--clients` device processes (bench/connect-devices.ts) that connect
// the fleet at once, each with at most `--concurrency` handshakes under way. A device connects as the protocol
// asks (docs/protocol.md): CONNECT with its key and a retained will, SUBSCRIBE to its command filter at QoS 1,
// retained hello and status at QoS 1; it counts once all four are answered. Reported: connects/s per slice of
// `--slice` devices in completion order (flat means the broker's cost per connect does not grow with the
// fleet), the time the first 10,000 took, and the broker's RSS and heap after two GCs before the storm and
// once the fleet sits idle, so memory per idle connection = delta / devices, and the broker's CPU time per
// connect (until the storm's records are in InfluxDB). Before it, the same storm against bare aedes (no
// authentication, no storage, nothing retained) in a process of its own: its time and CPU per connect are the
// floor fieldq's are divided by.
// Progress and a summary on stderr; one JSON line on stdout at the end.

const { values } = parseArgs({
  options: {
    devices: { type: "string", default: "10000" },
    clients: { type: "string", default: "4" },
    concurrency: { type: "string", default: "100" },
    slice: { type: "string", default: "1000" },
    keepalive: { type: "string", default: "300" },
    idle: { type: "string", default: "5" },
    "no-retain": { type: "boolean", default: false },
    "no-bare": { type: "boolean", default: false },
    "cpu-prof": { type: "string" },
    "stack-child": { type: "boolean" },
    "bare-child": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  },
});

const log = (line: string) => process.stderr.write(`${line}\n`);
const FIRST = 10_000;
/** Source ports per loopback address (Linux's ephemeral range is 32768-60999), with room to spare. */
const PORTS_PER_ADDRESS = 25_000;

type Slice = { upTo: number; seconds: number; perS: number };

function slices(doneAt: readonly number[], startedAt: number, size: number): Slice[] {
  const result: Slice[] = [];
  let from = startedAt;
  for (let end = size; end <= doneAt.length; end += size) {
    const to = doneAt[end - 1] as number;
    const seconds = Math.max(to - from, 1) / 1000;
    result.push({ upTo: end, seconds, perS: Math.round(size / seconds) });
    from = to;
  }
  return result;
}

/** Descriptors the broker process needs besides its connections: LevelDB, InfluxDB, listeners. */
const SPARE_FILES = 500;
/** Devices one client process connects at most: each holds a descriptor per device. */
const DEVICES_PER_CLIENT = 15_000;

/**
 * This process's open-file limit, raised first to `wanted` if it can be (root with CAP_SYS_RESOURCE); the
 * children inherit it. The broker holds a descriptor per device, so the fleet has to fit under it.
 */
function fileLimit(wanted: number): number {
  try {
    execFileSync("prlimit", ["--pid", String(process.pid), `--nofile=${wanted}:${wanted}`], {
      stdio: "ignore",
    });
  } catch {
    // Not allowed here (a container without CAP_SYS_RESOURCE): the limit stays what it is.
  }
  const soft = execFileSync("prlimit", [
    "--pid",
    String(process.pid),
    "--nofile",
    "-o",
    "SOFT",
    "--noheadings",
  ]);
  return Number(soft.toString().trim());
}

type DevicesChild = { report: Promise<DevicesReport>; close(): Promise<void> };

async function forkDevices(task: DevicesTask): Promise<{ start(): DevicesChild }> {
  const child = fork(resolve("bench/connect-devices.ts"), ["--devices-child"], {
    execArgv: process.execArgv.filter((a) => !a.startsWith("--cpu-prof")),
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const exited = once(child, "exit");
  await once(child, "message"); // ready
  return {
    start() {
      const report = once(child, "message").then(([message]) => message as DevicesReport);
      child.send({ kind: "start", task });
      return {
        report,
        async close() {
          child.send({ kind: "close" });
          await exited;
        },
      };
    },
  };
}

async function forkBroker(devices: number, env: NodeJS.ProcessEnv): Promise<StackChild> {
  const script = process.argv[1] ?? "bench/connect.ts";
  const profDir = values["cpu-prof"];
  // forkStack hands the child this process's node flags: the profiler's are added for this fork only.
  const flags = profDir ? ["--cpu-prof", `--cpu-prof-dir=${resolve(profDir)}`] : [];
  process.execArgv.push(...flags);
  try {
    return await forkStack(script, {
      ...env,
      FIELDQ_MAX_CONNECTIONS: String(devices + 100),
      FIELDQ_MAX_CONNECTIONS_PER_IP: String(devices + 100),
    });
  } finally {
    process.execArgv.splice(process.execArgv.length - flags.length, flags.length);
  }
}

type StormOptions = {
  devices: number;
  clients: number;
  concurrency: number;
  keepaliveS: number;
  retain: boolean;
  /** The loopback addresses' second byte: each storm connects from addresses of its own (127.N.c.a). */
  net: number;
};

type Storm = {
  doneAt: number[];
  startedAt: number;
  totalS: number;
  failed: number;
  loadBefore: number;
  cpuBefore: number;
};

/**
 * The fleet connects to the broker at once from `clients` processes; progress every 2 s. The device processes
 * go into `children` as they start (they hold the connections), for the caller to close.
 */
async function storm(broker: StackChild, options: StormOptions, children: DevicesChild[]): Promise<Storm> {
  const { devices, clients, concurrency, keepaliveS, retain, net } = options;
  const perClient = Math.ceil(devices / clients);
  const forks = await Promise.all(
    Array.from({ length: clients }, (_, c) => {
      const first = c * perClient;
      const count = Math.max(0, Math.min(perClient, devices - first));
      const addresses = Math.max(1, Math.ceil(count / PORTS_PER_ADDRESS));
      return forkDevices({
        port: broker.port,
        prefix: "storm-",
        first,
        count,
        concurrency,
        localAddresses: Array.from({ length: addresses }, (_, a) => `127.${net}.${c + 1}.${a + 1}`),
        keepaliveS,
        retain,
      });
    }),
  );
  log(
    `${devices.toLocaleString("en")} devices from ${clients} processes, ${concurrency} handshakes at a time each`,
  );
  const loadBefore = loadavg()[0] as number;
  const cpuBefore = (await broker.report()).cpuUs;
  const startedAt = Date.now();
  for (const f of forks) children.push(f.start());
  let finished = false;
  const reports = Promise.all(children.map((c) => c.report)).finally(() => {
    finished = true;
  });
  while (!finished) {
    await Promise.race([reports, sleep(2000)]);
    if (finished) break;
    const { connected } = await broker.report();
    const seconds = (Date.now() - startedAt) / 1000;
    log(
      `  ${seconds.toFixed(0)} s: ${connected.toLocaleString("en")} connected, ${Math.round(connected / seconds)}/s`,
    );
  }
  const results = await reports;
  const doneAt = results.flatMap((r) => r.doneAt).sort((a, b) => a - b);
  const failed = results.reduce((n, r) => n + r.failed, 0);
  const firstError = results.find((r) => r.firstError !== undefined)?.firstError;
  const totalS = ((doneAt.at(-1) ?? startedAt) - startedAt) / 1000;
  log(
    `connected ${doneAt.length.toLocaleString("en")} in ${totalS.toFixed(1)} s; ${failed} failed; load average ${loadBefore.toFixed(1)} → ${(loadavg()[0] as number).toFixed(1)}`,
  );
  if (firstError !== undefined) log(`  first failure: ${firstError}`);
  return { doneAt, startedAt, totalS, failed, loadBefore, cpuBefore };
}

/** The broker's CPU time since the storm began, per device connected. */
async function cpuPerConnect(broker: StackChild, run: Storm): Promise<number> {
  return Math.round(((await broker.report()).cpuUs - run.cpuBefore) / Math.max(1, run.doneAt.length));
}

/**
 * The same storm against bare aedes first, in a process of its own, so fieldq's figures have a floor measured
 * in the same run. Its devices send hello and status unretained: aedes's memory persistence matches every
 * SUBSCRIBE against every retained message (what made fieldq's storm take 100 s), and fieldq keeps no retained
 * message from devices.
 */
async function bareStorm(options: StormOptions): Promise<{ totalS: number; cpuUsPerConnect: number }> {
  const bare = await forkStack(process.argv[1] ?? "bench/connect.ts", {}, "--bare-child");
  const children: DevicesChild[] = [];
  try {
    log(
      `bare aedes (no authentication, no storage, nothing retained) in a child process on port ${bare.port}`,
    );
    const run = await storm(bare, { ...options, retain: false }, children);
    const cpuUsPerConnect = await cpuPerConnect(bare, run);
    log(`bare aedes CPU per connect: ${cpuUsPerConnect} µs`);
    if (run.failed > 0) throw new Error(`${run.failed} devices failed to connect to bare aedes`);
    return { totalS: run.totalS, cpuUsPerConnect };
  } finally {
    await Promise.all(children.map((c) => c.close()));
    await bare.close();
  }
}

async function main() {
  const devices = Number(values.devices);
  const clients = Math.max(1, Number(values.clients), Math.ceil(devices / DEVICES_PER_CLIENT));
  const sliceSize = Number(values.slice);
  const options: StormOptions = {
    devices,
    clients,
    concurrency: Number(values.concurrency),
    keepaliveS: Number(values.keepalive),
    retain: !values["no-retain"],
    net: 0,
  };
  const files = fileLimit(devices + SPARE_FILES + 1000);
  if (devices + SPARE_FILES > files) {
    log(
      `--devices ${devices} needs an open-file limit of at least ${devices + SPARE_FILES} in the broker process; ` +
        `it is ${files} here and cannot be raised (ulimit -n, or prlimit as root with CAP_SYS_RESOURCE)`,
    );
    process.exitCode = 2;
    return;
  }

  const bare = values["no-bare"] ? undefined : await bareStorm({ ...options, net: 1 });
  const influx = await benchInflux();
  const dataDir = await mkdtemp(join(tmpdir(), "fieldq-bench-connect-"));
  const database = `bench_connect_${Date.now()}`;
  const stack = await forkBroker(devices, {
    FIELDQ_INFLUX_URL: influx.url,
    FIELDQ_INFLUX_DB: database,
    FIELDQ_DATA_DIR: dataDir,
  });
  const children: DevicesChild[] = [];
  try {
    log(`fieldq broker in a child process on port ${stack.port}; ${influx.url}, database ${database}`);
    const before = await stack.report(true);
    const run = await storm(stack, options, children);
    const { doneAt, startedAt, totalS, failed, loadBefore } = run;

    // Idle: the hellos and statuses written through to InfluxDB, then a few quiet seconds.
    if (!(await drained(stack, 120_000))) log("the journal did not drain within 120 s");
    // The broker's CPU time for the storm, its records written through to InfluxDB included: on a machine shared
    // with other work, wall-clock rates swing from run to run, CPU per connect much less.
    const cpuUsPerConnect = await cpuPerConnect(stack, run);
    log(`broker CPU per connect (until its records were in InfluxDB): ${cpuUsPerConnect} µs`);
    if (bare !== undefined)
      log(
        `fieldq ÷ bare aedes: ${(totalS / bare.totalS).toFixed(2)}× the time, ${(cpuUsPerConnect / bare.cpuUsPerConnect).toFixed(2)}× the CPU per connect`,
      );
    await sleep(Number(values.idle) * 1000);
    const after = await stack.report(true);

    const bySlice = slices(doneAt, startedAt, sliceSize);
    const rates = bySlice.map((s) => s.perS);
    const sortedRates = [...rates].sort((a, b) => a - b);
    const firstTenS = doneAt.length >= FIRST ? ((doneAt[FIRST - 1] as number) - startedAt) / 1000 : null;
    const connected = doneAt.length;
    const perConnection = (a: number, b: number) => (connected > 0 ? Math.round((b - a) / connected) : 0);
    log(`connects/s per ${sliceSize.toLocaleString("en")} devices:`);
    for (const s of bySlice) log(`  up to ${s.upTo.toLocaleString("en")}: ${s.perS}/s`);
    log(
      `first ${FIRST.toLocaleString("en")}: ${firstTenS === null ? "n/a" : `${firstTenS.toFixed(1)} s`}; ` +
        `broker RSS ${mib(before.rss)} → ${mib(after.rss)} MiB, heap ${mib(before.heapUsed)} → ${mib(after.heapUsed)} MiB; ` +
        `per idle connection: RSS ${perConnection(before.rss, after.rss)} B, heap ${perConnection(before.heapUsed, after.heapUsed)} B`,
    );
    process.stdout.write(
      `${JSON.stringify({
        devices,
        retained: !values["no-retain"],
        connected,
        failed,
        clients,
        concurrency: options.concurrency,
        totalS: Number(totalS.toFixed(2)),
        connectsPerS: Math.round(connected / Math.max(totalS, 0.001)),
        firstTenThousandS: firstTenS === null ? null : Number(firstTenS.toFixed(2)),
        slice: sliceSize,
        slicePerS: rates,
        slicePerSMin: sortedRates[0] ?? 0,
        slicePerSMedian: quantile(sortedRates, 0.5),
        slicePerSMax: sortedRates.at(-1) ?? 0,
        lastVsFirstSlice:
          rates.length > 1 ? Number(((rates.at(-1) as number) / (rates[0] as number)).toFixed(2)) : null,
        rssBefore: before.rss,
        rssAfter: after.rss,
        heapBefore: before.heapUsed,
        heapAfter: after.heapUsed,
        rssPerConnection: perConnection(before.rss, after.rss),
        heapPerConnection: perConnection(before.heapUsed, after.heapUsed),
        connectedAtBroker: after.connected,
        cpuUsPerConnect,
        // The same storm against bare aedes in this run (absent with --no-bare), and fieldq's ratios to it.
        ...(bare !== undefined
          ? {
              bareAedes: bare,
              vsBareAedes: {
                time: Number((totalS / bare.totalS).toFixed(2)),
                cpu: Number((cpuUsPerConnect / bare.cpuUsPerConnect).toFixed(2)),
              },
            }
          : {}),
        // The machine's 1-minute load average as the storm began and at the end: other work competes for CPU.
        loadBefore: Number(loadBefore.toFixed(2)),
        loadAfter: Number((loadavg()[0] as number).toFixed(2)),
      })}\n`,
    );
    if (failed > 0) process.exitCode = 1;
  } finally {
    await Promise.all(children.map((c) => c.close()));
    await stack.close();
    await dropDatabase(influx.url, database);
    await influx.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

if (values.help) {
  process.stdout.write(
    [
      "Usage: npm run bench:connect -- [--devices 10000] [--clients 4] [--concurrency 100] [--slice 1000]",
      "                                [--keepalive 300] [--idle 5] [--no-retain] [--no-bare] [--cpu-prof DIR]",
      "  --devices N      the fleet; 100000 for the full curve (needs root to raise the open-file limit)",
      "  --clients N      device processes (at least one per 15,000 devices); each connects from loopback",
      "                   addresses of its own (127.0.N.x; 127.1.N.x for bare aedes)",
      "  --concurrency N  handshakes under way at a time in each device process",
      "  --slice N        connects/s is reported per N devices, in the order they finished connecting",
      "  --keepalive S    the devices' MQTT keepalive; they ping at half of it while idle",
      "  --idle S         seconds the fleet sits idle before the broker's memory is read again",
      "  --no-retain      hello and status without the retain flag, to see what retaining them costs",
      "  --no-bare        skip the same storm against bare aedes (no authentication, no storage) that",
      "                   runs first, so fieldq's time and CPU per connect come with a floor from the same run",
      "  --cpu-prof DIR   profile the broker process (node --cpu-prof) into DIR; summarise with",
      "                   npx tsx bench/profile-summary.ts DIR",
      "Environment: FIELDQ_BENCH_INFLUX_URL uses a running InfluxDB 1.x instead of a private influxd.",
      "",
    ].join("\n"),
  );
} else if (values["stack-child"]) {
  await runStackChild();
} else if (values["bare-child"]) {
  await runBareAedesChild();
} else {
  await main().catch((error: unknown) => {
    process.stderr.write(`bench:connect: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exitCode = 1;
  });
}
