import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { StorageLimits } from "../../config/env.js";
import { CardinalityGuard, type Dimension, valuesOf } from "../../ingest/cardinality.js";
import { decodeMessage } from "../../ingest/decode.js";
import { createIngest } from "../../ingest/ingest.js";
import { Journal } from "../../ingest/journal.js";
import { messagePoints } from "../../ingest/to-points.js";
import { silentLogger } from "../../observe/logger.js";
import { createMetrics } from "../../observe/metrics.js";

const LIMITS: StorageLimits = {
  maxPointBytes: 65_536,
  maxMetricNames: 10,
  maxDeviceMetricNames: 4,
  maxLabelValues: 6,
  maxDeviceLabelValues: 2,
};
const T = 1_736_150_400_000;

const values = (entries: Record<string, string[]>) =>
  new Map(Object.entries(entries).map(([d, v]) => [d as Dimension, new Set(v)]));
const metrics = (...names: string[]) => values({ metric: names });
const firmware = (...labels: string[]) => values({ firmware: labels });

describe("CardinalityGuard", () => {
  it("admits new metric names up to the device's limit and says which limit the next would pass", () => {
    const guard = new CardinalityGuard(LIMITS);
    expect(guard.admit("a", metrics("m1", "m2", "m3"))).toMatchObject({ ok: true });
    expect(guard.admit("a", metrics("m4"))).toMatchObject({ ok: true });
    expect(guard.admit("a", metrics("m5"))).toEqual({
      ok: false,
      message:
        "would add 1 metric name to the 4 this device introduced; a device may introduce at most 4 (FIELDQ_MAX_DEVICE_METRIC_NAMES)",
    });
  });

  it("gives a device ten times its label budget for seq_hi values, and stops a device that jumps past it", () => {
    const guard = new CardinalityGuard({ ...LIMITS, maxLabelValues: 100 });
    const seqHi = (n: number) => values({ seq_hi: [String(n)] });
    for (let n = 1; n <= 20; n++) expect(guard.admit("a", seqHi(n))).toMatchObject({ ok: true });
    expect(guard.admit("a", seqHi(21))).toMatchObject({
      ok: false,
      message: expect.stringContaining("a device may introduce at most 20 (FIELDQ_MAX_DEVICE_LABEL_VALUES)"),
    });
    expect(guard.admit("b", seqHi(5))).toEqual({ ok: true, introduced: [] });
  });

  it("lets a device use names other devices introduced, at no cost to it", () => {
    const guard = new CardinalityGuard(LIMITS);
    guard.admit("a", metrics("m1", "m2", "m3", "m4"));
    expect(guard.admit("b", metrics("m1", "m2", "m3", "m4"))).toEqual({ ok: true, introduced: [] });
    expect(guard.admit("b", metrics("m5", "m6", "m7", "m8"))).toMatchObject({ ok: true });
  });

  it("refuses a message as a whole: none of its new names are learned", () => {
    const guard = new CardinalityGuard(LIMITS);
    expect(guard.admit("a", metrics("m1", "m2", "m3", "m4", "m5"))).toMatchObject({ ok: false });
    expect(guard.size("metric")).toBe(0);
    expect(guard.admit("a", values({ metric: ["m1"], firmware: ["1", "2", "3"] }))).toMatchObject({
      ok: false,
    });
    expect(guard.size("metric")).toBe(0);
  });

  it("keeps the fleet within its limit, whoever adds the names", () => {
    const guard = new CardinalityGuard(LIMITS);
    guard.admit("a", metrics("a1", "a2", "a3", "a4"));
    guard.admit("b", metrics("b1", "b2", "b3", "b4"));
    expect(guard.admit("c", metrics("c1", "c2", "c3"))).toEqual({
      ok: false,
      message: "would add 3 metric names to the 8 known; fieldq keeps at most 10 (FIELDQ_MAX_METRIC_NAMES)",
    });
    expect(guard.admit("c", metrics("c1", "c2"))).toMatchObject({ ok: true });
    expect(guard.admit("c", metrics("a1", "b4"))).toMatchObject({ ok: true });
  });

  it("counts label values per tag, for the device and the fleet", () => {
    const guard = new CardinalityGuard(LIMITS);
    expect(guard.admit("a", firmware("1.0", "1.1"))).toMatchObject({ ok: true });
    expect(guard.admit("a", firmware("1.2"))).toEqual({
      ok: false,
      message:
        "would add 1 firmware value to the 2 this device introduced; a device may introduce at most 2 (FIELDQ_MAX_DEVICE_LABEL_VALUES)",
    });
    // Another tag has a count of its own.
    expect(guard.admit("a", values({ model: ["M1", "M2"] }))).toMatchObject({ ok: true });
    guard.admit("b", firmware("2.0", "2.1"));
    guard.admit("c", firmware("3.0", "3.1"));
    expect(guard.admit("d", firmware("4.0"))).toEqual({
      ok: false,
      message: "would add 1 firmware value to the 6 known; fieldq keeps at most 6 (FIELDQ_MAX_LABEL_VALUES)",
    });
    expect(guard.admit("d", firmware("1.0", "3.1"))).toEqual({ ok: true, introduced: [] });
  });

  it("names what each device introduced, once, so it can be stored with the message", () => {
    const guard = new CardinalityGuard(LIMITS);
    expect(guard.admit("a", values({ metric: ["m1"], firmware: ["1.0"] }))).toEqual({
      ok: true,
      introduced: [
        { dimension: "metric", value: "m1", device: "a" },
        { dimension: "firmware", value: "1.0", device: "a" },
      ],
    });
  });

  it("starts from what it learned before, the counts per device included", () => {
    const guard = new CardinalityGuard(LIMITS, [
      { dimension: "firmware", value: "1.0", device: "a" },
      { dimension: "firmware", value: "1.1", device: "a" },
      { dimension: "metric", value: "m1", device: "b" },
      { dimension: "no-longer-a-tag", value: "x", device: "a" },
    ]);
    expect(guard.admit("a", firmware("1.0", "1.1"))).toEqual({ ok: true, introduced: [] });
    expect(guard.admit("a", firmware("1.2"))).toMatchObject({ ok: false });
    expect(guard.admit("b", firmware("1.2"))).toMatchObject({ ok: true });
    expect(guard.size("metric")).toBe(1);
  });

  it("forgets what a message that was not stored introduced, and the device's count with it", () => {
    const guard = new CardinalityGuard(LIMITS);
    guard.admit("a", firmware("1.0"));
    const admitted = guard.admit("a", firmware("1.1"));
    if (!admitted.ok) throw new Error("admitted");
    guard.forget(admitted.introduced);
    expect(guard.size("firmware")).toBe(1);
    expect(guard.admit("a", firmware("1.2"))).toMatchObject({ ok: true });
    expect(guard.admit("a", firmware("1.3"))).toMatchObject({ ok: false });
  });

  it("stays within the limits however many new values are offered", () => {
    const guard = new CardinalityGuard(LIMITS);
    for (let device = 0; device < 100; device++) {
      for (let n = 0; n < 10; n++) {
        guard.admit(`d${device}`, metrics(`m${device}_${n}`));
        guard.admit(`d${device}`, values({ type: [`t${device}_${n}`] }));
      }
    }
    expect(guard.size("metric")).toBe(LIMITS.maxMetricNames);
    expect(guard.size("type")).toBe(LIMITS.maxLabelValues);
  });
});

describe("valuesOf", () => {
  const ctx = {
    meta: undefined,
    receivedMs: T,
    clockSkewFutureMs: 600_000,
    clockSkewPastMs: 86_400_000,
    discriminator: 0,
  };
  const of = (channel: string, body: unknown) => {
    const decoded = decodeMessage(`fq/v1/modem-0001/${channel}`, Buffer.from(JSON.stringify(body)), 65_536);
    if (!decoded.ok) throw new Error(decoded.refusal.message);
    const found = valuesOf(decoded.message, messagePoints(decoded.message, ctx));
    return Object.fromEntries([...found].map(([d, set]) => [d, [...set].sort()]));
  };

  it("takes every metric name of a telemetry batch once, and the device's tags", () => {
    expect(
      of("telemetry", [
        { ts: T, seq: 1, metrics: { snr: 1, up: true } },
        { ts: T, seq: 2, metrics: { snr: 2, crc: 3 } },
      ]),
    ).toEqual({
      metric: ["crc", "snr", "up"],
      kind: ["unknown"],
      model: ["unknown"],
      firmware: ["unknown"],
      region: ["unknown"],
    });
  });

  it("takes a hello's labels, the optional ones too", () => {
    expect(
      of("hello", { kind: "modem", model: "M1", firmware: "1.0", hardware: "B", serial: "S", isp: "Telco" }),
    ).toMatchObject({
      kind: ["modem"],
      model: ["M1"],
      firmware: ["1.0"],
      hardware: ["B"],
      region: ["unknown"],
      isp: ["Telco"],
    });
  });

  it("takes a fault's code, component and fingerprint", () => {
    const found = of("fault", { ts: T, seq: 1, code: "DSL_RESYNC", severity: "warning", component: "dsl" });
    expect(found).toMatchObject({ code: ["DSL_RESYNC"], component: ["dsl"] });
    expect(found.fingerprint).toHaveLength(1);
    expect(found).not.toHaveProperty("severity");
  });

  it("takes an event's type, and the firmware a successful update moves the device to", () => {
    const update = (result: string) => ({
      ts: T,
      seq: 1,
      type: "firmware_update",
      data: { from: "1.0", to: "9.9", result },
    });
    expect(of("event", update("success"))).toMatchObject({
      type: ["firmware_update"],
      firmware: ["9.9", "unknown"],
    });
    expect(of("event", update("failure"))).toMatchObject({ firmware: ["unknown"] });
    expect(of("event", { ts: T, seq: 1, type: "door_open" })).toMatchObject({ type: ["door_open"] });
  });
});

describe("the ingest's guard", () => {
  it("counts nothing for a message a full journal left unacknowledged, and the device's next label goes through", async () => {
    const dir = await mkdtemp(join(tmpdir(), "fieldq-cardinality-"));
    // The filler fault (with its fault_list copy and state points) takes ~3,400 bytes, a hello ~600 more.
    const journal = await Journal.open({ dir, maxBytes: 3800, logger: silentLogger });
    try {
      const ingest = await createIngest({
        journal,
        logger: silentLogger,
        metrics: createMetrics(),
        maxPayloadBytes: 65_536,
        clockSkewFutureMs: 600_000,
        clockSkewPastMs: 86_400_000,
        limits: { ...LIMITS, maxDeviceLabelValues: 1 },
      });
      const hello = (firmware: string) =>
        Buffer.from(JSON.stringify({ kind: "modem", model: "M1", firmware, hardware: "B", serial: "S" }));
      const topic = "fq/v1/modem-0001/hello";
      // Fill the journal with a fault whose text takes most of its bound.
      const filler = { ts: T, seq: 1, code: "X", severity: "info", message: "x".repeat(1000) };
      expect(
        await ingest.receive("modem-0002", "fq/v1/modem-0002/fault", Buffer.from(JSON.stringify(filler))),
      ).toEqual({ kind: "accepted" });
      expect(await ingest.receive("modem-0001", topic, hello("1.0"))).toEqual({ kind: "unavailable" });
      await journal.commit((await journal.readBatch(100)).keys, []);
      expect(await ingest.receive("modem-0001", topic, hello("2.0"))).toEqual({ kind: "accepted" });
      expect(await ingest.receive("modem-0001", topic, hello("3.0"))).toMatchObject({
        kind: "refused",
        reason: "over_limit",
      });
    } finally {
      await journal.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
