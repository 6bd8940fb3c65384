import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { statusAt } from "../../analytics/liveness.js";
import { silenceOptions } from "../../analytics/silence.js";
import { iso } from "../../contract/time.js";
import {
  cadenceOf,
  clearedHelloFields,
  type DeviceActivity,
  GAP_SAMPLES,
  type Observation,
  observationOf,
  observe,
  storedDeviceMs,
  withGap,
} from "../../ingest/device-state.js";
import { createIngest, type Ingest } from "../../ingest/ingest.js";
import { type DeviceMetaRecord, Journal } from "../../ingest/journal.js";
import { deviceStatePoint, firmwareUpdateOf, messagePoints, unknownMeta } from "../../ingest/to-points.js";
import { silentLogger } from "../../observe/logger.js";
import { createMetrics } from "../../observe/metrics.js";
import { createDeviceDirectory, livenessInputOf } from "../../services/device-directory.js";
import { createDeviceService } from "../../services/devices.js";
import { type DeviceStateRow, deviceStateRow } from "../../storage/device-queries.js";
import { createMemoryDeviceReads } from "../../storage/device-reads-memory.js";
import { encodePoint } from "../../storage/line-protocol.js";
import { hashedSlot, type Point } from "../../storage/schema.js";

/** A device's device_state time: its hashed slot in nanoseconds. */
const slotOf = (deviceId: string) => String(hashedSlot(deviceId));

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

  it("writes a successful firmware update at once, even one its hello told first", () => {
    const state = observe({}, report(T), EVERY).activity;
    expect(observe(state, report(T + 1, { metaChanged: false, update: true }), EVERY).write).toBe(true);
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
        lastReportDeviceMs: T - 65_000,
        lastSeenMs: T,
        presence: { state: "offline", atMs: T, source: "will" },
      },
      updatedMs: T,
    });
    expect(point.rp).toBe("long");
    expect(encodePoint(point)).toBe(
      'device_state device="modem-0001",kind="modem",model="FQ-M200",firmware="2.4.1",hardware="rev C",serial="S-1",region="eu-west",isp="Example Telecom",first_ms=1736064000000i,last_report_ms=1736150395000i,last_report_device_ms=1736150335000i,last_seen_ms=1736150400000i,presence="offline",presence_ms=1736150400000i,presence_source="will",gap_median_ms=60000,gap_samples=3i,updated_ms=1736150400000i 42',
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
      { atMs: T, deviceMs: T - 9_000 },
    );
    expect(update).toEqual({ atMs: T, deviceMs: T - 9_000, from: "2.4.0", to: "2.4.1" });
    const point = deviceStatePoint({
      deviceId: "modem-0002",
      record: { ...unknownMeta(), slot: 1 },
      activity: {},
      updatedMs: T,
      update,
    });
    expect(encodePoint(point)).toBe(
      'device_state device="modem-0002",update_ms=1736150400000i,update_device_ms=1736150391000i,update_from="2.4.0",update_to="2.4.1",updated_ms=1736150400000i 1',
    );
  });

  it("is no update when it failed, or when the event is of another type", () => {
    const event = (type: string, data: Record<string, unknown>) =>
      firmwareUpdateOf({ channel: "event", deviceId: "d", body: { ts: T, seq: 1, type, data } } as never, {
        atMs: T,
      });
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
        [slotOf("modem-0001"), { int: T }], // first seen: its connect
        [slotOf("modem-0001"), { int: T }], // its first hello changes its metadata
        [slotOf("modem-0001"), { int: T + 10_000 }], // the fault, 10 s after the last write
        [slotOf("modem-0001"), { int: T + 11_000 }], // the disconnect
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
        last_report_device_ms: { int: T + 11_000 },
        last_seen_ms: { int: T + 11_000 },
        presence: "offline",
        presence_ms: { int: T + 11_000 },
        presence_source: "broker",
        updated_ms: { int: T + 11_000 },
      });
      // A second device gets its own slot; a will is presence, not a report.
      await send("printer-0001", "status", { state: "offline" }, "will");
      const [will] = await states();
      expect(will?.timeNs).toBe(slotOf("printer-0001"));
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
        slot: hashedSlot("b-device"),
        firstMs: T,
        gapsMs: [3_600_000, 3_600_000],
      });
      await second.send("c-device", "telemetry", { ts: clock.now, seq: 1, metrics: { snr: 7 } });
      await second.send("b-device", "telemetry", { ts: clock.now, seq: 4, metrics: { snr: 7 } });
      const after = await second.states();
      expect(after.map((p) => [p.fields.device, p.timeNs])).toEqual([
        ["c-device", slotOf("c-device")],
        ["b-device", slotOf("b-device")],
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
      expect(ingest.deviceMeta("b-device")?.slot).toBe(hashedSlot("b-device"));
      await states(); // drains the journal
      clock.now += 1_000;
      expect(await send("b-device", "telemetry", { ts: clock.now, seq: 1, metrics: { snr: 7 } })).toEqual({
        kind: "accepted",
      });
      expect((await states()).map((p) => [p.fields.device, p.timeNs])).toEqual([
        ["b-device", slotOf("b-device")],
      ]);
      // Its record went with that append: a restart knows its slot and its first time.
      await journal.close();
      const again = await start(dir, clock);
      expect(again.ingest.deviceMeta("b-device")).toMatchObject({
        slot: hashedSlot("b-device"),
        firstMs: T,
        serial: "S-1",
      });
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

describe("what the ingest keeps of a device's own clock", () => {
  const sample = (ts: number, seq: number) => ({ ts, seq, metrics: { snr: 7 } });

  it("observes the newest stored time of a message's timestamped points, none for a hello or a status", () => {
    const message = {
      channel: "telemetry" as const,
      deviceId: "d",
      body: [sample(T - 120_000, 1), sample(T - 60_000, 2)],
    };
    const records = messagePoints(message, { ...CONTEXT, receivedMs: T }).records;
    expect(storedDeviceMs(records)).toBe(T - 60_000);
    expect(observationOf(message, records, T, "device")).toEqual({
      atMs: T,
      report: true,
      deviceMs: T - 60_000,
    });
    const hello = { channel: "hello" as const, deviceId: "d", body: HELLO };
    const helloRecords = messagePoints(hello, { ...CONTEXT, receivedMs: T }).records;
    expect(observationOf(hello, helloRecords, T, "device")).toEqual({ atMs: T, report: true });
    const will = { channel: "status" as const, deviceId: "d", body: { state: "offline" as const } };
    expect(observationOf(will, [], T, "will")).toEqual({
      atMs: T,
      report: false,
      presence: { state: "offline", atMs: T, source: "will" },
    });
  });

  it("takes the receive time of a clock it does not trust", () => {
    const ahead = { channel: "telemetry" as const, deviceId: "d", body: [sample(T + 3_600_000, 1)] };
    expect(storedDeviceMs(messagePoints(ahead, { ...CONTEXT, receivedMs: T }).records)).toBe(T);
  });

  it("keeps the newest device time, whatever order the reports came in", () => {
    let state = observe({}, report(T, { deviceMs: T - 5_000 }), EVERY).activity;
    state = observe(state, report(T + 1_000, { deviceMs: T - 60_000 }), EVERY).activity;
    expect(state).toMatchObject({ lastReportMs: T + 1_000, lastReportDeviceMs: T - 5_000 });
    state = observe(state, report(T + 2_000), EVERY).activity;
    expect(state.lastReportDeviceMs).toBe(T - 5_000);
  });
});

const CONTEXT = {
  meta: undefined,
  receivedMs: T,
  clockSkewFutureMs: 600_000,
  clockSkewPastMs: 30 * 86_400_000,
  discriminator: 0,
};
const HELLO = { kind: "modem", model: "FQ-M200", firmware: "2.4.1", hardware: "rev C", serial: "S-1" };

describe("live and backfilled, the same messages give the same silent devices", () => {
  const MIN = 60_000;
  const HOUR = 60 * MIN;
  const CADENCE = 30 * MIN;
  const START = T - 24 * HOUR;
  const END = T;
  const JUDGE = END + 2 * MIN;
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  type Sent = { ts: number; channel: "telemetry" | "event"; body: Record<string, unknown> };
  type Device = {
    id: string;
    messages: Sent[];
    goesSilent: boolean;
    offline?: { fromMs: number; toMs: number };
  };

  /** Telemetry every 30 min in [START, stopMs), with the extra messages. Allowance: 3 × 30 min. */
  function history(stopMs: number, extra: Sent[] = []): Sent[] {
    const sent: Sent[] = [...extra];
    for (let ts = START; ts < stopMs; ts += CADENCE)
      sent.push({ ts, channel: "telemetry", body: { metrics: { snr: 7 } } });
    return sent
      .sort((x, y) => x.ts - y.ts)
      .map((m, i) => ({ ...m, body: { ...m.body, ts: m.ts, seq: i + 1 } }));
  }
  const update = { from: "2.4.0", to: "2.4.1", result: "success" };
  const FLEET: Device[] = [
    { id: "a-steady", messages: history(END), goesSilent: false },
    {
      id: "b-updated",
      messages: history(END - 12 * HOUR, [
        { ts: END - 13 * HOUR, channel: "event", body: { type: "firmware_update", data: update } },
      ]),
      goesSilent: true,
    },
    // Its last report an hour before the end: not overdue yet.
    { id: "c-late", messages: history(END - 50 * MIN), goesSilent: false },
    // Offline for two hours before the last, then it delivers what it buffered.
    {
      id: "d-buffered",
      messages: history(END),
      goesSilent: false,
      offline: { fromMs: END - 3 * HOUR, toMs: END - HOUR },
    },
  ];

  type Step = { atMs: number; run: (ingest: Ingest) => Promise<unknown> };
  const topic = (id: string, channel: string) => `fq/v1/${id}/${channel}`;
  const send = (id: string, channel: string, body: unknown, source?: "device" | "will") => (ingest: Ingest) =>
    ingest.receive(id, topic(id, channel), Buffer.from(JSON.stringify(body)), source);
  const connect = (id: string, atMs: number): Step[] => [
    { atMs, run: (ingest) => ingest.presence(id, "online") },
    { atMs, run: send(id, "hello", HELLO) },
  ];
  const drop = (id: string, atMs: number): Step[] => [
    { atMs, run: send(id, "status", { state: "offline" }, "will") },
    { atMs, run: (ingest) => ingest.presence(id, "offline") },
  ];

  /** Each message when it happens; a device offline sends what it buffered when it is back. */
  function live(): Step[] {
    const steps: Step[] = [];
    for (const d of FLEET) {
      steps.push(...connect(d.id, START - MIN));
      for (const m of d.messages) {
        const buffered = d.offline !== undefined && m.ts >= d.offline.fromMs && m.ts < d.offline.toMs;
        const atMs = buffered ? (d.offline?.toMs ?? m.ts) : m.ts;
        steps.push({ atMs, run: send(d.id, m.channel, m.body) });
      }
      if (d.offline !== undefined) {
        steps.push(...drop(d.id, d.offline.fromMs));
        steps.push(...connect(d.id, d.offline.toMs - 1));
      }
      const lastMs = d.messages.at(-1)?.ts ?? START;
      steps.push(
        ...(d.goesSilent
          ? drop(d.id, lastMs + MIN)
          : [{ atMs: END, run: (i: Ingest) => i.presence(d.id, "offline") }]),
      );
    }
    return steps.sort((x, y) => x.atMs - y.atMs);
  }

  /** After the history's end, one device after the other: connect, every message, goodbye or drop. */
  function backfill(): Step[] {
    let atMs = END + 10_000;
    const steps: Step[] = [];
    for (const d of FLEET) {
      steps.push(...connect(d.id, atMs));
      for (const m of d.messages) {
        atMs += 5;
        steps.push({ atMs, run: send(d.id, m.channel, m.body) });
      }
      atMs += 5;
      steps.push(
        ...(d.goesSilent ? drop(d.id, atMs) : [{ atMs, run: (i: Ingest) => i.presence(d.id, "offline") }]),
      );
    }
    return steps;
  }

  /** device_state as InfluxDB would hold it: each point's fields merged over the slot's earlier ones. */
  function rowsOf(points: readonly Point[]): DeviceStateRow[] {
    const slots = new Map<string, Record<string, unknown>>();
    for (const p of points) {
      const fields = Object.fromEntries(
        Object.entries(p.fields).map(([k, v]) => [k, typeof v === "object" ? v.int : v]),
      );
      slots.set(p.timeNs, { ...(slots.get(p.timeNs) ?? {}), ...fields });
    }
    return [...slots.values()].flatMap((f) => deviceStateRow({ ...f, time: new Date(0) }) ?? []);
  }

  async function play(steps: Step[], onStep?: (atMs: number, points: Point[]) => void) {
    dir = await mkdtemp(join(tmpdir(), "fieldq-device-clock-"));
    const clock = { now: START };
    const journal = await Journal.open({ dir, maxBytes: 1e8, logger: silentLogger });
    const points: Point[] = [];
    try {
      const ingest = await createIngest({
        journal,
        logger: silentLogger,
        metrics: createMetrics(),
        maxPayloadBytes: 65_536,
        clockSkewFutureMs: 600_000,
        clockSkewPastMs: 30 * 86_400_000,
        limits: {
          maxPointBytes: 65_536,
          maxMetricNames: 100,
          maxDeviceMetricNames: 100,
          maxLabelValues: 100,
          maxDeviceLabelValues: 10,
        },
        now: () => clock.now,
      });
      for (const step of steps) {
        clock.now = step.atMs;
        await step.run(ingest);
        const batch = await journal.readBatch(10_000);
        await journal.commit(batch.keys, []);
        points.push(...batch.records.map((r) => r.point).filter((p) => p.measurement === "device_state"));
        onStep?.(step.atMs, points);
      }
    } finally {
      await journal.close();
    }
    return rowsOf(points);
  }

  async function judge(rows: DeviceStateRow[]) {
    const directory = createDeviceDirectory({ load: async () => rows, refreshEveryMs: 0 });
    const devices = createDeviceService({
      reads: createMemoryDeviceReads({ states: rows }),
      directory,
      now: () => JUDGE,
    });
    try {
      const { items } = await devices.listDevices({ limit: 100, offset: 0 });
      const report = await devices.silence({ fromMs: START, toMs: JUDGE });
      return { statuses: Object.fromEntries(items.map((d) => [d.id, [d.status, d.lastReport]])), report };
    } finally {
      directory.close();
    }
  }

  it("finds the device that stopped 12 h before the end right after the import, and after its update", async () => {
    const liveRows = await play(live());
    if (dir) await rm(dir, { recursive: true, force: true });
    const backfilledRows = await play(backfill());
    const [asLive, asBackfilled] = [await judge(liveRows), await judge(backfilledRows)];
    const lastOf = (id: string) => iso(FLEET.find((d) => d.id === id)?.messages.at(-1)?.ts ?? 0);
    expect(asBackfilled.statuses).toEqual({
      "a-steady": ["offline", lastOf("a-steady")],
      "b-updated": ["silent", lastOf("b-updated")],
      "c-late": ["offline", lastOf("c-late")],
      "d-buffered": ["offline", lastOf("d-buffered")],
    });
    expect(asLive.statuses).toEqual(asBackfilled.statuses);
    expect(asBackfilled.report.afterUpdate.devices).toEqual([
      {
        device: "b-updated",
        model: "FQ-M200",
        from: "2.4.0",
        to: "2.4.1",
        updatedAt: iso(END - 13 * HOUR),
        lastReport: lastOf("b-updated"),
      },
    ]);
    expect(asLive.report).toEqual(asBackfilled.report);
  });

  it("does not call a device silent while it delivers what it buffered offline", async () => {
    const during: string[] = [];
    const d = FLEET.find((f) => f.id === "d-buffered");
    const backAtMs = d?.offline?.toMs ?? 0;
    await play(live(), (atMs, points) => {
      // Its buffer arrives at the instant it is back: look at it there, message by message.
      if (atMs !== backAtMs) return;
      const row = rowsOf(points).find((r) => r.device === "d-buffered");
      if (row !== undefined) during.push(statusAt(livenessInputOf(row), atMs, silenceOptions()));
    });
    expect(during.length).toBeGreaterThanOrEqual(4);
    expect(new Set(during)).toEqual(new Set(["online"]));
  });
});
