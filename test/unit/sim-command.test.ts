import { describe, expect, it } from "vitest";
import type { SimHandle, SimOptions } from "../../device-sim/run-sim.js";
import { simCommand } from "../../device-sim/sim-command.js";
import { silentLogger } from "../../observe/logger.js";

const SECRET = "a-test-secret-of-32-characters!!";

/** A runSim stand-in that records its options and runs until stopped. */
function fakeRun(options: { fail?: Error } = {}) {
  const calls: SimOptions[] = [];
  let stopped = 0;
  const run = async (sim: SimOptions): Promise<SimHandle> => {
    calls.push(sim);
    if (options.fail !== undefined) throw options.fail;
    let resolveDone: () => void = () => {};
    const done = new Promise<void>((resolve) => {
      resolveDone = resolve;
    });
    return {
      done,
      stats: () => ({
        devices: sim.devices,
        connected: sim.devices,
        ticks: 0,
        published: { hello: 0, telemetry: 0, fault: 0, event: 0 },
        failed: 0,
        refused: 0,
      }),
      stop: async () => {
        stopped += 1;
        resolveDone();
      },
    };
  };
  return { run, calls, stopped: () => stopped };
}

function io(run = fakeRun().run) {
  const out: string[] = [];
  const err: string[] = [];
  const controller = new AbortController();
  return {
    out,
    err,
    controller,
    io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l), signal: controller.signal, run },
  };
}

describe("fieldq sim", () => {
  it("prints its usage with the defaults on --help", async () => {
    const t = io();
    expect(await simCommand(["--help"], { mqttUrl: "mqtt://broker.lan:1883" }, silentLogger, t.io)).toBe(0);
    const text = t.out.join("\n");
    expect(text).toContain("Usage: fieldq sim");
    expect(text).toContain("(default mqtt://broker.lan:1883)");
    expect(text).toContain("(default 20)");
    expect(text).toContain("(default 5s)");
    expect(t.err).toEqual([]);
  });

  it.each([
    [["--devices", "0"], "--devices must be a whole number from 1 to 9999"],
    [["--devices", "many"], "--devices must be a whole number"],
    [["--seed", "-1"], "--seed"],
    [["--interval", "5"], "--interval must be a duration such as 500ms, 5s or 1m"],
    [["--interval", "10ms"], "--interval must be at least 100ms"],
    [["--duration", "soon"], "--duration must be a duration"],
    [["--speed", "0"], "--speed must be a number above 0"],
    [["--broker", "localhost:1883"], "--broker must be a URL"],
    [["--colour"], "Unknown option '--colour'"],
    [["extra"], "Unexpected argument 'extra'"],
  ])("refuses %j with exit code 2", async (argv, message) => {
    const run = fakeRun();
    const t = io(run.run);
    expect(await simCommand(argv, { secret: SECRET }, silentLogger, t.io)).toBe(2);
    expect(t.err.join("\n")).toContain(message);
    expect(run.calls).toEqual([]);
  });

  it("asks for FIELDQ_DEVICE_SECRET when it is missing", async () => {
    const t = io();
    expect(await simCommand([], {}, silentLogger, t.io)).toBe(2);
    expect(t.err.join("\n")).toContain("set FIELDQ_DEVICE_SECRET");
  });

  it("runs the fleet with the parsed options until stopped", async () => {
    const run = fakeRun();
    const t = io(run.run);
    const exit = simCommand(
      ["--devices", "3", "--seed", "9", "--interval", "500ms", "--duration", "1m", "--speed", "10"],
      { secret: SECRET, mqttUrl: "mqtt://broker.lan:1883" },
      silentLogger,
      t.io,
    );
    await new Promise((resolve) => setImmediate(resolve));
    expect(run.calls).toEqual([
      expect.objectContaining({
        brokerUrl: "mqtt://broker.lan:1883",
        secret: SECRET,
        devices: 3,
        seed: 9,
        intervalMs: 500,
        durationMs: 60_000,
        speed: 10,
      }),
    ]);
    t.controller.abort();
    expect(await exit).toBe(0);
    expect(run.stopped()).toBe(1);
  });

  it("uses the defaults when given no flags", async () => {
    const run = fakeRun();
    const t = io(run.run);
    t.controller.abort();
    expect(await simCommand([], { secret: SECRET }, silentLogger, t.io)).toBe(0);
    expect(run.calls[0]).toMatchObject({
      brokerUrl: "mqtt://127.0.0.1:1883",
      devices: 20,
      seed: 1,
      intervalMs: 5000,
      speed: 1,
    });
    expect(run.calls[0]).not.toHaveProperty("durationMs");
  });

  it("exits with 1 when the fleet can't connect", async () => {
    const t = io(fakeRun({ fail: new Error("connect ECONNREFUSED 127.0.0.1:1883") }).run);
    expect(await simCommand([], { secret: SECRET }, silentLogger, t.io)).toBe(1);
    expect(t.err.join("\n")).toContain("could not connect to mqtt://127.0.0.1:1883: connect ECONNREFUSED");
  });
});
