import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  cadenceOf,
  clearedHelloFields,
  type DeviceActivity,
  GAP_SAMPLES,
  type Observation,
  observe,
  withGap,
} from "../../ingest/device-state.js";
import { createIngest } from "../../ingest/ingest.js";
import { type DeviceMetaRecord, Journal } from "../../ingest/journal.js";
import { deviceStatePoint, firmwareUpdateOf, unknownMeta } from "../../ingest/to-points.js";
import { silentLogger } from "../../observe/logger.js";
import { createMetrics } from "../../observe/metrics.js";
import { encodePoint } from "../../storage/line-protocol.js";
import type { Point } from "../../storage/schema.js";

const T = 1_736_150_400_000; // 2025-01-06T08:00:00Z
const EVERY = 10_000;

const report = (atMs: number, extra: Partial<Observation> = {}): Observation => ({
  atMs,
  report: true,
  ...extra,
});

describe("observe: when a device's state point is written", () => {
  it("writes the first observation since start at once", () => {
    const { activity, write } = observe({}, report(T), EVERY);
    expect(write).toBe(true);
    expect(activity).toEqual({ lastReportMs: T, lastSeenMs: T, writtenMs: T, writtenReportMs: T });
  });

  it("writes a report at most once per interval, keeping the newest report in memory", () => {
    let state: DeviceActivity = observe({}, report(T), EVERY).activity;
    const writes: boolean[] = [];
    for (const at of [T + 1_000, T + 9_999, T + 10_000, T + 15_000, T + 20_000]) {
      const next = observe(state, report(at), EVERY);
      writes.push(next.write);
      state = next.activity;
    }
    expect(writes).toEqual([false, false, true, false, true]);
    expect(state).toEqual({
      lastReportMs: T + 20_000,
      lastSeenMs: T + 20_000,
      writtenMs: T + 20_000,
      writtenReportMs: T + 20_000,
    });
  });

  it("writes a device's first report at once, even right after its connect was written", () => {
    const online = { state: "online" as const, atMs: T, source: "broker" as const };
    const connected = observe({}, { atMs: T, report: false, presence: online }, EVERY).activity;
    expect(observe(connected, report(T + 1_000), EVERY).write).toBe(true);
  });

  it("writes the first report of a device back after a while at once, though its reconnect was just written", () => {
    const before = observe({}, report(T), EVERY).activity;
    const online = { state: "online" as const, atMs: T + 3_600_000, source: "broker" as const };
    const back = observe(before, { atMs: T + 3_600_000, report: false, presence: online }, EVERY);
    expect(back.write).toBe(true);
    // The reconnect's point still holds the report of an hour ago: the next report must not wait.
    expect(observe(back.activity, report(T + 3_601_000), EVERY).write).toBe(true);
  });

  it("writes every message with an interval of 0", () => {
    const state = observe({}, report(T), 0).activity;
    expect(observe(state, report(T), 0).write).toBe(true);
  });

  it("writes a presence change and a metadata change at once", () => {
    const state = observe({}, report(T), EVERY).activity;
    const offline = { state: "offline" as const, atMs: T + 1, source: "broker" as const };
    expect(observe(state, { atMs: T + 1, report: false, presence: offline }, EVERY)).toEqual({
      activity: {
        lastReportMs: T,
        lastSeenMs: T + 1,
        presence: offline,
        writtenMs: T + 1,
        writtenReportMs: T,
      },
      write: true,
    });
    expect(observe(state, report(T + 2, { metaChanged: true }), EVERY).write).toBe(true);
    expect(observe(state, report(T + 2, { metaChanged: false }), EVERY).write).toBe(false);
  });

  it("counts a will as seen but not as a report", () => {
    const state = observe({}, report(T), EVERY).activity;
    const will = { state: "offline" as const, atMs: T + 5, source: "will" as const };
    const { activity } = observe(state, { atMs: T + 5, report: false, presence: will }, EVERY);
    expect(activity.lastReportMs).toBe(T);
    expect(activity.lastSeenMs).toBe(T + 5);
    expect(activity.presence).toEqual(will);
  });

  it("keeps the newest times when observations arrive out of order", () => {
    const state = observe({}, report(T + 100), EVERY).activity;
    const { activity } = observe(state, report(T), EVERY);
    expect(activity.lastReportMs).toBe(T + 100);
    expect(activity.lastSeenMs).toBe(T + 100);
  });

  it("does not hold the writes off when the clock steps back", () => {
    const state = observe({}, report(T), EVERY).activity;
    expect(observe(state, report(T - 60_000), EVERY).write).toBe(true);
  });
});

describe("gap samples", () => {
  it("keeps the last GAP_SAMPLES, oldest first", () => {
    let gaps: number[] | undefined;
    for (let i = 1; i <= GAP_SAMPLES + 3; i++) gaps = withGap(gaps, i);
    expect(gaps).toHaveLength(GAP_SAMPLES);
    expect(gaps?.[0]).toBe(4);
    expect(gaps?.at(-1)).toBe(GAP_SAMPLES + 3);
  });

  it("stores their median and count, none without samples", () => {
    expect(cadenceOf(undefined)).toBeUndefined();
    expect(cadenceOf([])).toBeUndefined();
    expect(cadenceOf([300_000, 60_000, 120_000])).toEqual({ medianMs: 120_000, samples: 3 });
    expect(cadenceOf([60_000, 120_000])).toEqual({ medianMs: 90_000, samples: 2 });
  });
});

const META: DeviceMetaRecord = {
  kind: "modem",
  model: "FQ-M200",
  firmware: "2.4.1",
  hardware: "rev C",
  region: "eu-west",
  isp: "Example Telecom",
  serial: "S-1",
};

describe("clearedHelloFields", () => {
  it("names the fields a new hello no longer says, nothing for a first hello", () => {
    expect(clearedHelloFields(undefined, { ...META, region: "unknown" })).toEqual([]);
    expect(clearedHelloFields(META, { ...META, region: "unknown", isp: "unknown" })).toEqual([
      "region",
      "isp",
    ]);
    expect(clearedHelloFields(unknownMeta(), META)).toEqual([]);
  });
});

describe("deviceStatePoint", () => {
  it("writes every known field at the device's slot", () => {
    const point = deviceStatePoint({
      deviceId: "modem-0001",
      record: { ...META, slot: 42, firstMs: T - 86_400_000, gapsMs: [60_000, 60_000, 120_000] },
      activity: {
        lastReportMs: T - 5_000,
        lastSeenMs: T,
        presence: { state: "offline", atMs: T, source: "will" },
      },
      updatedMs: T,
    });
    expect(point.rp).toBe("long");
    expect(encodePoint(point)).toBe(
      'device_state device="modem-0001",kind="modem",model="FQ-M200",firmware="2.4.1",hardware="rev C",serial="S-1",region="eu-west",isp="Example Telecom",first_ms=1736064000000i,last_report_ms=1736150395000i,last_seen_ms=1736150400000i,presence="offline",presence_ms=1736150400000i,presence_source="will",gap_median_ms=60000,gap_samples=3i,updated_ms=1736150400000i 42',
    );
  });

  it("leaves out what it does not know, and writes a cleared hello field as unknown", () => {
    const point = deviceStatePoint({
      deviceId: "modem-0002",
      record: { ...unknownMeta(), slot: 1 },
      activity: {},
      updatedMs: T,
      cleared: ["region"],
    });
    expect(encodePoint(point)).toBe(
      'device_state device="modem-0002",region="unknown",updated_ms=1736150400000i 1',
    );
  });
});

describe("a successful firmware update in device_state", () => {
  it("is written with the point, so the silence report needs no query of the update events", () => {
    const update = firmwareUpdateOf(
      {
        channel: "event",
        deviceId: "modem-0002",
        body: {
          ts: T - 9_000,
          seq: 7,
          type: "firmware_update",
          data: { from: "2.4.0", to: "2.4.1", result: "success" },
        },
      },
      T,
    );
    expect(update).toEqual({ atMs: T, from: "2.4.0", to: "2.4.1" });
    const point = deviceStatePoint({
      deviceId: "modem-0002",
      record: { ...unknownMeta(), slot: 1 },
      activity: {},
      updatedMs: T,
      update,
    });
    expect(encodePoint(point)).toBe(
      'device_state device="modem-0002",update_ms=1736150400000i,update_from="2.4.0",update_to="2.4.1",updated_ms=1736150400000i 1',
    );
  });

  it("is no update when it failed, or when the event is of another type", () => {
    const event = (type: string, data: Record<string, unknown>) =>
      firmwareUpdateOf({ channel: "event", deviceId: "d", body: { ts: T, seq: 1, type, data } } as never, T);
    expect(event("firmware_update", { from: "1", to: "2", result: "failure" })).toBeUndefined();
    expect(event("reboot", { reason: "watchdog" })).toBeUndefined();
  });
});

describe("the ingest's device_state points", () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  async function start(journalDir: string, clock: { now: number }, everyMs = EVERY, maxBytes = 1e8) {
    const journal = await Journal.open({ dir: journalDir, maxBytes, logger: silentLogger });
    const ingest = await createIngest({
      journal,
      logger: silentLogger,
      metrics: createMetrics(),
      maxPayloadBytes: 65_536,
      clockSkewFutureMs: 600_000,
      clockSkewPastMs: 86_400_000,
      limits: {
        maxPointBytes: 65_536,
        maxMetricNames: 100,
        maxDeviceMetricNames: 100,
        maxLabelValues: 100,
        maxDeviceLabelValues: 10,
      },
      deviceStateEveryMs: everyMs,
      now: () => clock.now,
    });
    const send = (deviceId: string, channel: string, body: unknown, source?: "device" | "will") =>
      ingest.receive(deviceId, `fq/v1/${deviceId}/${channel}`, Buffer.from(JSON.stringify(body)), source);
    /** The device_state points journaled so far, and drains the journal. */
    const states = async (): Promise<Point[]> => {
      const batch = await journal.readBatch(10_000);
      await journal.commit(batch.keys, []);
      return batch.records.map((r) => r.point).filter((p) => p.measurement === "device_state");
    };
    return { journal, ingest, send, states };
  }

  const hello = { kind: "modem", model: "FQ-M200", firmware: "2.4.1", hardware: "rev C", serial: "S-1" };

  it("writes the first message, a new hello and presence at once, reports at most once per interval", async () => {
    dir = await mkdtemp(join(tmpdir(), "fieldq-device-state-"));
    const clock = { now: T };
    const { journal, ingest, send, states } = await start(dir, clock);
    try {
      await ingest.presence("modem-0001", "online");
      await send("modem-0001", "hello", hello);
      clock.now += 1_000;
      await send("modem-0001", "hello", hello); // the same hello again: a report like any other
      await send("modem-0001", "telemetry", { ts: clock.now, seq: 1, metrics: { snr: 7 } });
      clock.now += 9_000;
      await send("modem-0001", "fault", { ts: clock.now, seq: 2, code: "X", severity: "info" });
      clock.now += 1_000;
      await send("modem-0001", "telemetry", { ts: clock.now, seq: 3, metrics: { snr: 7 } });
      await ingest.presence("modem-0001", "offline");
      const points = await states();
      expect(points.map((p) => [p.timeNs, p.fields.updated_ms])).toEqual([
        ["1", { int: T }], // first seen: its connect
        ["1", { int: T }], // its first hello changes its metadata
        ["1", { int: T + 10_000 }], // the fault, 10 s after the last write
        ["1", { int: T + 11_000 }], // the disconnect
      ]);
      expect(points.at(-1)?.fields).toEqual({
        device: "modem-0001",
        kind: "modem",
        model: "FQ-M200",
        firmware: "2.4.1",
        hardware: "rev C",
        serial: "S-1",
        first_ms: { int: T },
        last_report_ms: { int: T + 11_000 },
        last_seen_ms: { int: T + 11_000 },
        presence: "offline",
        presence_ms: { int: T + 11_000 },
        presence_source: "broker",
        updated_ms: { int: T + 11_000 },
      });
      // A second device gets the next slot; a will is presence, not a report.
      await send("printer-0001", "status", { state: "offline" }, "will");
      const [will] = await states();
      expect(will?.timeNs).toBe("2");
      expect(will?.fields).toMatchObject({ presence: "offline", presence_source: "will" });
      expect(will?.fields.last_report_ms).toBeUndefined();
    } finally {
      await journal.close();
    }
  });

  it("keeps slots, first times and gap samples across a restart, and writes the first message after it", async () => {
    dir = await mkdtemp(join(tmpdir(), "fieldq-device-state-"));
    const clock = { now: T };
    const first = await start(dir, clock);
    await first.send("a-device", "hello", hello);
    await first.send("b-device", "hello", hello);
    // Reports in three hours: two gap samples of an hour each.
    for (let h = 0; h < 3; h++) {
      clock.now = T + h * 3_600_000;
      await first.send("b-device", "telemetry", { ts: clock.now, seq: h + 1, metrics: { snr: 7 } });
    }
    const before = await first.states();
    expect(before.at(-1)?.fields).toMatchObject({ gap_median_ms: 3_600_000, gap_samples: { int: 2 } });
    await first.journal.close();

    clock.now = T + 4 * 3_600_000;
    const second = await start(dir, clock);
    try {
      expect(second.ingest.deviceMeta("b-device")).toMatchObject({
        slot: 2,
        firstMs: T,
        gapsMs: [3_600_000, 3_600_000],
      });
      await second.send("c-device", "telemetry", { ts: clock.now, seq: 1, metrics: { snr: 7 } });
      await second.send("b-device", "telemetry", { ts: clock.now, seq: 4, metrics: { snr: 7 } });
      const after = await second.states();
      expect(after.map((p) => [p.fields.device, p.timeNs])).toEqual([
        ["c-device", "3"],
        ["b-device", "2"],
      ]);
      // What this process has not seen yet is left out: InfluxDB keeps it from the earlier point.
      expect(after[1]?.fields).toMatchObject({ first_ms: { int: T }, last_report_ms: { int: clock.now } });
      expect(after[1]?.fields.presence).toBeUndefined();
    } finally {
      await second.journal.close();
    }
  });

  it("keeps a new device's record and writes its state at once when a full journal left its first message out", async () => {
    dir = await mkdtemp(join(tmpdir(), "fieldq-device-state-"));
    const clock = { now: T };
    const { journal, ingest, send, states } = await start(dir, clock, EVERY, 3000);
    try {
      const filler = { ts: T, seq: 1, code: "X", severity: "info", message: "x".repeat(700) };
      expect(await send("a-device", "fault", filler)).toEqual({ kind: "accepted" });
      expect(await send("b-device", "hello", hello)).toEqual({ kind: "unavailable" });
      expect(ingest.deviceMeta("b-device")?.slot).toBe(2);
      await states(); // drains the journal
      clock.now += 1_000;
      expect(await send("b-device", "telemetry", { ts: clock.now, seq: 1, metrics: { snr: 7 } })).toEqual({
        kind: "accepted",
      });
      expect((await states()).map((p) => [p.fields.device, p.timeNs])).toEqual([["b-device", "2"]]);
      // Its record went with that append: a restart knows its slot and its first time.
      await journal.close();
      const again = await start(dir, clock);
      expect(again.ingest.deviceMeta("b-device")).toMatchObject({ slot: 2, firstMs: T, serial: "S-1" });
      await again.journal.close();
    } finally {
      if (journal) await journal.close().catch(() => {});
    }
  });

  it("writes a state point with the message it belongs to, in one journal entry", async () => {
    dir = await mkdtemp(join(tmpdir(), "fieldq-device-state-"));
    const clock = { now: T };
    const { journal, send } = await start(dir, clock, 0);
    try {
      await send("modem-0001", "fault", { ts: T, seq: 1, code: "X", severity: "info" });
      const batch = await journal.readBatch(1);
      expect(batch.keys).toHaveLength(1);
      expect(batch.records.map((r) => r.point.measurement)).toEqual([
        "fault",
        "fault_list",
        "activity",
        "device_state",
      ]);
    } finally {
      await journal.close();
    }
  });
});
