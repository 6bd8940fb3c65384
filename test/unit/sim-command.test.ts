import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { BackfillOptions, BackfillStats } from "../../device-sim/backfill.js";
import { emptyCounts, type SimHandle, type SimOptions } from "../../device-sim/run-sim.js";
import { loadScenario } from "../../device-sim/scenario/parse.js";
import { scaleFleet, simCommand } from "../../device-sim/sim-command.js";
import { silentLogger } from "../../observe/logger.js";

const SECRET = "a-test-secret-of-32-characters!!";
const NOW = Date.UTC(2025, 5, 1, 12);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "fieldq-sim-command-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** runSim and runBackfill stand-ins that record their options; a live run lasts until stopped. */
function fakes(options: { fail?: Error } = {}) {
  const live: SimOptions[] = [];
  const backfills: BackfillOptions[] = [];
  let stopped = 0;
  const run = async (sim: SimOptions): Promise<SimHandle> => {
    live.push(sim);
    if (options.fail !== undefined) throw options.fail;
    let resolveDone: () => void = () => {};
    const done = new Promise<void>((resolve) => {
      resolveDone = resolve;
    });
    const devices = sim.plan.devices.length;
    return {
      done,
      stats: () => ({
        devices,
        connected: devices,
        ticks: 0,
        published: emptyCounts(),
        failed: 0,
        refused: 0,
        commands: 0,
        silent: 0,
        offline: 0,
        scenarioMs: sim.fromMs ?? sim.plan.startMs,
      }),
      stop: async () => {
        stopped += 1;
        resolveDone();
      },
    };
  };
  const backfill = async (request: BackfillOptions): Promise<BackfillStats> => {
    backfills.push(request);
    const devices = request.plan.devices.length;
    return {
      devices,
      flushed: devices,
      failed: 0,
      silent: 0,
      published: { ...emptyCounts(), telemetry: 10 },
      samples: 100,
      refused: 0,
      retries: 0,
    };
  };
  return { run, backfill, live, backfills, stopped: () => stopped };
}

function harness(f = fakes()) {
  const out: string[] = [];
  const err: string[] = [];
  const written = new Map<string, string>();
  const scored: { argv: string[]; vars: unknown }[] = [];
  const controller = new AbortController();
  const io = {
    out: (l: string) => out.push(l),
    err: (l: string) => err.push(l),
    signal: controller.signal,
    run: f.run,
    backfill: f.backfill,
    score: async (argv: string[], vars: unknown) => {
      scored.push({ argv, vars });
      return 0;
    },
    progress: { isTTY: false, write: () => true },
    now: () => NOW,
    writeFile: async (path: string, text: string) => {
      written.set(path, text);
    },
  };
  return { out, err, written, scored, controller, io, fakes: f };
}

const env = { secret: SECRET, mqttUrl: "mqtt://broker.lan:1883" };

describe("fieldq sim", () => {
  it("prints its usage with the defaults on --help", async () => {
    const t = harness();
    expect(await simCommand(["--help"], env, silentLogger, t.io)).toBe(0);
    const text = t.out.join("\n");
    expect(text).toContain("Usage: fieldq sim [run] [options]");
    expect(text).toContain("(default mqtt://broker.lan:1883)");
    expect(text).toContain("(default home-demo)");
    expect(text).toContain("(default 50)");
    expect(t.err).toEqual([]);
  });

  it.each([
    [["--mode", "sideways"], "--mode must be live or backfill"],
    [["--seed", "-1"], "--seed"],
    [["--speed", "0"], "--speed must be a number above 0"],
    [["--pool", "0", "--mode", "backfill"], "--pool must be a whole number from 1"],
    [["--devices", "many"], "--devices must be a whole number"],
    [["--start", "yesterday"], "--start must be now, a time before now such as -14d, or an ISO time"],
    [["--duration", "soon"], "--duration must be a duration such as 90m"],
    [["--broker", "localhost:1883"], "--broker must be a URL"],
    [["--mode", "backfill", "--speed", "10"], "--speed is for live mode"],
    [["--pool", "10"], "--pool is for --mode backfill"],
    [["--follow"], "--follow is for --mode backfill"],
    [["--colour"], "Unknown option '--colour'"],
    [["extra"], "Unexpected argument 'extra'"],
    [["run", "--start", "2025-07-01T00:00:00Z"], "ahead of the clock"],
    [["--mode", "backfill", "--start=-90d"], "FIELDQ_CLOCK_SKEW_PAST"],
  ])("refuses %j with exit code 2", async (argv, message) => {
    const t = harness();
    expect(await simCommand(argv, env, silentLogger, t.io)).toBe(2);
    expect(t.err.join("\n")).toContain(message);
    expect(t.fakes.live).toEqual([]);
    expect(t.fakes.backfills).toEqual([]);
  });

  it("asks for FIELDQ_DEVICE_SECRET when it is missing", async () => {
    const t = harness();
    expect(await simCommand([], {}, silentLogger, t.io)).toBe(2);
    expect(t.err.join("\n")).toContain("set FIELDQ_DEVICE_SECRET");
  });

  it("reports a broken scenario's problems before asking for FIELDQ_DEVICE_SECRET", async () => {
    const file = join(dir, "broken-without-secret.yaml");
    await writeFile(file, ["name: broken", "duration: 2 days", "fleet: []", ""].join("\n"));
    const t = harness();
    expect(await simCommand(["--scenario", file], {}, silentLogger, t.io)).toBe(2);
    const text = t.err.join("\n");
    expect(text).toContain(`${file}:2:`);
    expect(text).not.toContain("FIELDQ_DEVICE_SECRET");
    expect(t.written.size).toBe(0);
  });

  it("names the shipped scenarios when asked for one that does not exist", async () => {
    const t = harness();
    expect(await simCommand(["--scenario", "no-such-thing"], env, silentLogger, t.io)).toBe(2);
    expect(t.err.join("\n")).toMatch(/no-such-thing.*shipped: .*home-demo/s);
  });

  it("prints a scenario file's problems with their lines and exits 2", async () => {
    const file = join(dir, "broken.yaml");
    await writeFile(
      file,
      [
        "name: broken",
        "duration: 2 days",
        "fleet:",
        "  - kind: toaster",
        "    model: X",
        "    count: 1",
        "",
      ].join("\n"),
    );
    const t = harness();
    expect(await simCommand(["--scenario", file], env, silentLogger, t.io)).toBe(2);
    const text = t.err.join("\n");
    expect(text).toContain(`${file}:2:`);
    expect(text).toContain(`${file}:4:`);
  });

  it("runs the home demo live by default, from now, and writes its ground truth", async () => {
    const t = harness();
    t.controller.abort();
    expect(await simCommand([], env, silentLogger, t.io)).toBe(0);
    const [options] = t.fakes.live;
    expect(options).toMatchObject({ brokerUrl: "mqtt://broker.lan:1883", secret: SECRET, speed: 1, seed: 1 });
    expect(options?.plan.startMs).toBe(NOW);
    expect(options?.plan.endMs).toBe(NOW + 3 * DAY);
    const truth = JSON.parse(t.written.get("./fieldq-truth-home-demo.json") ?? "{}");
    expect(truth).toMatchObject({
      scenario: "home-demo",
      seed: 1,
      startMs: NOW,
      devices: options?.plan.devices.length,
    });
    expect(t.out.join("\n")).toContain("ground truth written to ./fieldq-truth-home-demo.json");
    expect(t.fakes.stopped()).toBe(1);
  });

  it("starts a sped-up live run in the past, so that device clocks catch up with the wall clock at its end", async () => {
    const t = harness();
    t.controller.abort();
    const truth = join(dir, "truth.json");
    const argv = ["--seed", "9", "--speed", "12", "--duration", "12h", "--truth", truth];
    expect(await simCommand(argv, env, silentLogger, t.io)).toBe(0);
    const [options] = t.fakes.live;
    // Twelve scenario hours at 12× take one wall hour: they start eleven hours back.
    expect(options?.plan.startMs).toBe(NOW - 11 * HOUR);
    expect(options?.plan.endMs).toBe(NOW + HOUR);
    expect(options).toMatchObject({ speed: 12, seed: 9 });
    expect(JSON.parse(t.written.get(truth) ?? "{}")).toMatchObject({ seed: 9, startMs: NOW - 11 * HOUR });
  });

  it("plays a scenario that starts in the past from now in live mode, and from its start as a backfill", async () => {
    const live = harness();
    live.controller.abort();
    expect(await simCommand(["--scenario", "mixed-fleet"], env, silentLogger, live.io)).toBe(0);
    expect(live.fakes.live[0]?.plan.startMs).toBe(NOW);
    const backfill = harness();
    expect(
      await simCommand(["--scenario", "mixed-fleet", "--mode", "backfill"], env, silentLogger, backfill.io),
    ).toBe(0);
    expect(backfill.fakes.backfills[0]?.plan.startMs).toBe(NOW - 10 * DAY);
  });

  it("backfills so that the history ends now, through a pool of the given size", async () => {
    const t = harness();
    expect(await simCommand(["--mode", "backfill", "--pool", "7"], env, silentLogger, t.io)).toBe(0);
    expect(t.fakes.live).toEqual([]);
    const [options] = t.fakes.backfills;
    expect(options?.pool).toBe(7);
    expect(options?.plan.startMs).toBe(NOW - 3 * DAY);
    expect(options?.plan.endMs).toBe(NOW);
    expect(t.out.join("\n")).toMatch(/backfill: \d+\/\d+ devices flushed/);
  });

  it("keeps an explicit start: the same scenario, seed and start plan the same fleet", async () => {
    const start = "2025-05-20T00:00:00Z";
    const runs = [harness(), harness()];
    for (const t of runs) {
      expect(await simCommand(["--mode", "backfill", "--start", start], env, silentLogger, t.io)).toBe(0);
    }
    const [first, second] = runs.map((t) => t.fakes.backfills[0]?.plan);
    expect(first?.startMs).toBe(Date.parse(start));
    expect(first).toEqual(second);
  });

  it("follows a backfill with a live run from where it ended, open-ended", async () => {
    const t = harness();
    const exit = simCommand(["--mode", "backfill", "--follow"], env, silentLogger, t.io);
    await vi.waitFor(() => expect(t.fakes.live).toHaveLength(1));
    t.controller.abort();
    expect(await exit).toBe(0);
    const [options] = t.fakes.live;
    expect(options?.fromMs).toBe(NOW);
    expect(options?.plan.endMs).toBe(Number.POSITIVE_INFINITY);
    expect(options?.speed).toBe(1);
  });

  it("scales the fleet to about --devices devices", async () => {
    const t = harness();
    t.controller.abort();
    expect(await simCommand(["--devices", "20"], env, silentLogger, t.io)).toBe(0);
    expect(t.fakes.live[0]?.plan.devices).toHaveLength(20);
  });

  it("exits with 1 when the fleet can't connect", async () => {
    const t = harness(fakes({ fail: new Error("connect ECONNREFUSED 127.0.0.1:1883") }));
    expect(await simCommand([], { secret: SECRET }, silentLogger, t.io)).toBe(1);
    expect(t.err.join("\n")).toContain("could not connect to mqtt://127.0.0.1:1883: connect ECONNREFUSED");
  });

  it("lists the shipped scenarios", async () => {
    const t = harness();
    expect(await simCommand(["scenarios"], env, silentLogger, t.io)).toBe(0);
    const names = t.out.map((line) => line.split(/\s+/)[0]);
    expect(names).toEqual(expect.arrayContaining(["home-demo", "firmware-regression", "mixed-fleet"]));
    expect(t.out.find((l) => l.startsWith("home-demo"))).toMatch(/\d+ devices\s+3d/);
  });

  it("hands `sim score` over to the score command with the environment", async () => {
    const t = harness();
    const vars = { FIELDQ_API_TOKEN: "t" };
    expect(await simCommand(["score", "truth.json", "--json"], { ...env, vars }, silentLogger, t.io)).toBe(0);
    expect(t.scored).toEqual([{ argv: ["truth.json", "--json"], vars }]);
  });
});

describe("scaleFleet", () => {
  it.each([5, 20, 137, 1000])("keeps the mix and adds up to %i devices", async (target) => {
    const loaded = await loadScenario("home-demo");
    if (!loaded.ok) throw new Error("home-demo does not load");
    const scaled = scaleFleet(loaded.scenario, target);
    expect(scaled.fleet.reduce((sum, entry) => sum + entry.count, 0)).toBe(target);
    expect(scaled.fleet.every((entry) => entry.count >= 1)).toBe(true);
  });
});
