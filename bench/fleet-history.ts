import type { Fault } from "../contract/messages.js";
import { DAY_MS, floorHour, HOUR_MS, MINUTE_MS } from "../contract/time.js";
import { createRandom } from "../device-sim/random.js";
import type { DecodedMessage } from "../ingest/decode.js";
import type { DeviceMetaRecord, JournalRecord } from "../ingest/journal.js";
import {
  activityPoint,
  deviceStatePoint,
  deviceTags,
  exposureHours,
  messagePoints,
  type PresenceSource,
  presencePoint,
} from "../ingest/to-points.js";
import type { Point } from "../storage/schema.js";

// A fleet's stored history as the ingest would have written it, built with the ingest's own point functions:
// per device a hello and a broker connect at the start, one telemetry sample per device-hour and the
// activity point the ingest derives from it, faults, reboots (with their reconnect and hello), feedback,
// firmware updates (event, then hellos with the new firmware), and at the end ~8% of devices disconnected
// within the last two hours and ~2% gone silent for good days before the end. The ingest already knew every
// device before the window starts, so even the first connect carries its tags.

type Line = {
  kind: string;
  model: string;
  /** Serial prefix, as printed on the label. */
  prefix: string;
  share: number;
  /** Oldest first: an update moves a device to a later one. */
  firmwares: readonly [string, ...string[]];
  codes: readonly [string, ...string[]];
  metrics: (random: () => number, uptimeS: number) => Record<string, number>;
};

const round1 = (n: number) => Math.round(n * 10) / 10;

const LINES: readonly [Line, ...Line[]] = [
  {
    kind: "modem",
    model: "FQ-Modem 7590",
    prefix: "M7590",
    share: 0.4,
    firmwares: ["7.29", "7.31", "7.57"],
    codes: ["DSL_RESYNC", "WAN_DOWN", "DNS_FAILURE", "WIFI_RADIO_CRASH", "OVERHEAT"],
    metrics: (random, uptimeS) => ({
      snr_margin_db: round1(6 + random() * 6),
      uptime_s: uptimeS,
      temp_c: round1(45 + random() * 15),
      wifi_clients: Math.floor(random() * 12),
    }),
  },
  {
    kind: "modem",
    model: "FQ-Modem 5530",
    prefix: "M5530",
    share: 0.3,
    firmwares: ["7.31", "8.02"],
    codes: ["DSL_RESYNC", "WAN_DOWN", "DNS_FAILURE", "WIFI_RADIO_CRASH"],
    metrics: (random, uptimeS) => ({
      snr_margin_db: round1(5 + random() * 7),
      uptime_s: uptimeS,
      temp_c: round1(42 + random() * 14),
    }),
  },
  {
    kind: "printer",
    model: "FQ-Print Mk3",
    prefix: "PMK3",
    share: 0.2,
    firmwares: ["3.1.0", "3.2.0"],
    codes: ["THERMAL_RUNAWAY", "LAYER_SHIFT", "FILAMENT_RUNOUT", "NOZZLE_CLOG", "FAN_FAILURE"],
    metrics: (random, uptimeS) => ({
      nozzle_temp_c: round1(200 + random() * 20),
      bed_temp_c: round1(55 + random() * 10),
      uptime_s: uptimeS,
      temp_c: round1(28 + random() * 8),
    }),
  },
  {
    kind: "printer",
    model: "FQ-Print Mini",
    prefix: "PMINI",
    share: 0.1,
    firmwares: ["1.4.2"],
    codes: ["LAYER_SHIFT", "FILAMENT_RUNOUT", "BED_LEVEL_DRIFT"],
    metrics: (random, uptimeS) => ({
      nozzle_temp_c: round1(195 + random() * 20),
      uptime_s: uptimeS,
      temp_c: round1(27 + random() * 8),
    }),
  },
];
const REGIONS = ["eu-west", "eu-central", "eu-north", "us-east", "us-west"] as const;
const ISPS = ["Telekom", "Vodafone", "Orange", "Comcast", "Verizon", "KPN"] as const;
const SEVERITIES = ["info", "warning", "warning", "error", "error", "critical"] as const;
/** Per device-hour. */
const FAULT_RATE = 0.02;
const REBOOT_RATE = 0.002;
const FEEDBACK_RATE = 0.001;
/** A device-hour without a report (a flaky line), so cadence samples are not all one hour. */
const MISSED_HOUR_RATE = 0.02;
/** Devices that disconnect within the last two hours and stay offline. */
const OFFLINE_SHARE = 0.08;
/** Devices that stop reporting for good 2-10 days before the end (half of them leave a last will). */
const SILENT_SHARE = 0.02;
/** Devices of a line with a later firmware that update to it some time in the window. */
const UPDATE_SHARE = 0.3;
/**
 * The one hot spot, so "the largest issue" and firmware compare have something to find: this model on this
 * firmware resyncs far more often.
 */
const HOT = { model: "FQ-Modem 7590", firmware: "7.57", code: "DSL_RESYNC", rate: 0.03 } as const;
/** Devices updated to this firmware go silent within a day of the update this often (the silence read). */
const BRICKING = { model: "FQ-Modem 5530", firmware: "8.02", share: 0.05 } as const;

/** Grows whenever the history written changes, so bench:api builds a stored one anew. */
export const HISTORY_VERSION = 2;

/** Gap samples device_state keeps (ingest/device-state.ts GAP_SAMPLES, a day of hourly ones). */
const GAP_SAMPLES = 24;

export type HistoryOptions = { devices: number; days: number; endMs: number; seed: number };

/** A device's id: its kind and its index in the fleet. */
export const deviceId = (kind: string, index: number) => `${kind}-${String(index).padStart(5, "0")}`;

type Device = {
  id: string;
  meta: DeviceMetaRecord;
  line: Line;
  seq: number;
  /** Minute of the hour the device reports in. */
  offsetMs: number;
  /** The device's first hour of reporting is this far back: uptime grows from it. */
  bootMs: number;
  /** No report at or after this time. */
  stopMs: number;
  /** The end of the device's story: a broker disconnect, a last will, or nothing (half-open connection). */
  ending: "online" | "disconnect" | "will" | "half-open";
  /** When its firmware update happens, and to what. */
  update?: { atMs: number; to: string };
  /** Exposure bookkeeping, as the ingest keeps it (ingest/ingest.ts withExposure). */
  lastExposureKey?: string;
  lastReportMs?: number;
  /** What device_state holds at the end: the ingest's bookkeeping of the device, in broker time. */
  state: {
    slot: number;
    firstMs?: number;
    lastReportMs?: number;
    lastSeenMs?: number;
    presence?: { state: "online" | "offline"; atMs: number; source: PresenceSource };
    gapsMs: number[];
    /** Its successful firmware update, as the ingest records it (broker time). */
    update?: { atMs: number; from: string; to: string };
  };
};

/** Yields batches of points, hour by hour, for every device; deterministic for a seed. */
export function* fleetHistory(options: HistoryOptions): Generator<Point[]> {
  const rng = createRandom(options.seed);
  const random = rng.next;
  const pick = <T>(items: readonly [T, ...T[]]) => rng.pick(items);
  const startMs = floorHour(options.endMs - options.days * DAY_MS);
  const endMs = options.endMs;
  let discriminator = 0;
  const ctx = (meta: DeviceMetaRecord, receivedMs: number) => ({
    meta,
    receivedMs,
    clockSkewFutureMs: 600_000,
    clockSkewPastMs: 400 * DAY_MS,
    discriminator: discriminator++ % 1_000_000,
  });
  const hex = () =>
    Math.floor(random() * 0x1_0000_0000)
      .toString(16)
      .toUpperCase()
      .padStart(8, "0");

  const fleet: Device[] = Array.from({ length: options.devices }, (_, i) => {
    const roll = random();
    let cumulative = 0;
    const line =
      LINES.find((l) => {
        cumulative += l.share;
        return roll < cumulative;
      }) ?? LINES[0];
    const firmwareIndex = Math.floor(random() * line.firmwares.length);
    const meta: DeviceMetaRecord = {
      kind: line.kind,
      model: line.model,
      firmware: line.firmwares[firmwareIndex] ?? line.firmwares[0],
      hardware: pick(["rev A", "rev B"]),
      region: pick(REGIONS),
      isp: pick(ISPS),
      serial: `${line.prefix}-${hex()}`,
    };
    const device: Device = {
      id: deviceId(line.kind, i),
      meta,
      line,
      seq: 0,
      offsetMs: Math.floor(random() * 59) * MINUTE_MS + Math.floor(random() * 60_000),
      bootMs: startMs - Math.floor(random() * 20 * DAY_MS),
      stopMs: endMs,
      ending: "online",
      state: { slot: i + 1, gapsMs: [] },
    };
    const later = line.firmwares.slice(firmwareIndex + 1);
    if (later.length > 0 && random() < UPDATE_SHARE) {
      const to = later[Math.floor(random() * later.length)] ?? meta.firmware;
      device.update = { atMs: startMs + Math.floor(random() * (endMs - startMs - 2 * HOUR_MS)), to };
    }
    const fate = random();
    const bricked =
      device.update !== undefined &&
      line.model === BRICKING.model &&
      device.update.to === BRICKING.firmware &&
      random() < BRICKING.share;
    if (bricked && device.update) {
      device.stopMs = floorHour(device.update.atMs + Math.floor(random() * 20 * HOUR_MS)) + HOUR_MS;
      device.ending = random() < 0.5 ? "will" : "half-open";
    } else if (fate < SILENT_SHARE) {
      const silentMs = floorHour(endMs - (2 + Math.floor(random() * 8)) * DAY_MS - random() * DAY_MS);
      // In a window of a few days, still some report before the silence.
      device.stopMs = Math.max(startMs + 2 * HOUR_MS, silentMs);
      device.ending = random() < 0.5 ? "will" : "half-open";
    } else if (fate < SILENT_SHARE + OFFLINE_SHARE) {
      // Its last report in one of the last two hours, then a clean disconnect: offline, not yet overdue.
      device.stopMs = endMs - Math.floor(random() * 2) * HOUR_MS;
      device.ending = "disconnect";
    }
    if (device.update && device.update.atMs >= device.stopMs) delete device.update;
    return device;
  });

  /** The ingest's bookkeeping of a device it received something from (device_state), up to the end. */
  const seen = (device: Device, atMs: number) => {
    if (atMs >= endMs) return;
    device.state.firstMs ??= atMs;
    device.state.lastSeenMs = Math.max(device.state.lastSeenMs ?? atMs, atMs);
  };
  /** Runs one message through the ingest's mapping, following a metadata change as the ingest would. */
  const receive = (device: Device, message: DecodedMessage, receivedMs: number): JournalRecord[] => {
    seen(device, receivedMs);
    if (receivedMs < endMs)
      device.state.lastReportMs = Math.max(device.state.lastReportMs ?? receivedMs, receivedMs);
    const mapped = messagePoints(message, ctx(device.meta, receivedMs));
    if (mapped.meta) device.meta = mapped.meta;
    return mapped.records;
  };
  const hello = (device: Device, atMs: number) =>
    receive(
      device,
      {
        channel: "hello",
        deviceId: device.id,
        body: {
          kind: device.meta.kind,
          model: device.meta.model,
          firmware: device.meta.firmware,
          hardware: device.meta.hardware,
          serial: device.meta.serial,
          region: device.meta.region,
          isp: device.meta.isp,
        },
      },
      atMs,
    );
  const presence = (device: Device, atMs: number, state: "online" | "offline", source: PresenceSource) => {
    seen(device, atMs);
    device.state.presence = { state, atMs, source };
    return presencePoint(deviceTags(device.id, device.meta), ctx(device.meta, atMs), state, source);
  };
  const event = (device: Device, atMs: number, body: Record<string, unknown>) =>
    receive(
      device,
      {
        channel: "event",
        deviceId: device.id,
        body: { ts: atMs, seq: ++device.seq, ...body } as Extract<
          DecodedMessage,
          { channel: "event" }
        >["body"],
      },
      atMs,
    );
  /** A reconnect after a reboot or update: broker disconnect, connect, the retained hello again. */
  const reconnect = (device: Device, atMs: number, points: Point[]) => {
    points.push(presence(device, atMs + 1_000, "offline", "broker"));
    points.push(presence(device, atMs + 40_000, "online", "broker"));
    points.push(...hello(device, atMs + 41_000).map((r) => r.point));
    device.bootMs = atMs + 30_000;
  };

  for (let hourMs = startMs; hourMs < endMs; hourMs += HOUR_MS) {
    const points: Point[] = [];
    for (const device of fleet) {
      if (hourMs === startMs) {
        const connectMs = Math.max(startMs, startMs + device.offsetMs - 2_000);
        points.push(presence(device, connectMs, "online", "broker"));
        points.push(...hello(device, connectMs + 1_000).map((r) => r.point));
      }
      if (hourMs >= device.stopMs) continue;
      const at = hourMs + device.offsetMs;
      const records: JournalRecord[] = [];
      const update = device.update;
      if (update && update.atMs >= hourMs && update.atMs < hourMs + HOUR_MS) {
        const data = { from: device.meta.firmware, to: update.to, result: "success" };
        records.push(...event(device, update.atMs, { type: "firmware_update", data }));
        device.state.update = { atMs: update.atMs, from: data.from, to: data.to };
        reconnect(device, update.atMs, points);
      }
      const missed = random() < MISSED_HOUR_RATE;
      if (!missed) {
        const metrics = device.line.metrics(random, Math.max(0, Math.floor((at - device.bootMs) / 1000)));
        records.push(
          ...receive(
            device,
            { channel: "telemetry", deviceId: device.id, body: [{ ts: at, seq: ++device.seq, metrics }] },
            at + 150,
          ),
        );
      }
      const hot = device.meta.model === HOT.model && device.meta.firmware === HOT.firmware;
      const faultAt = hourMs + Math.floor(random() * HOUR_MS);
      const faultRoll = random();
      if (faultRoll < FAULT_RATE + (hot ? HOT.rate : 0)) {
        const fault: Fault = {
          ts: faultAt,
          seq: ++device.seq,
          code: faultRoll >= FAULT_RATE ? HOT.code : pick(device.line.codes),
          severity: pick(SEVERITIES),
        };
        records.push(
          ...receive(device, { channel: "fault", deviceId: device.id, body: fault }, faultAt + 150),
        );
      }
      if (random() < REBOOT_RATE) {
        const rebootAt = hourMs + Math.floor(random() * HOUR_MS);
        records.push(...event(device, rebootAt, { type: "reboot", data: { reason: "watchdog" } }));
        reconnect(device, rebootAt, points);
      }
      if (random() < FEEDBACK_RATE) {
        const feedbackAt = hourMs + Math.floor(random() * HOUR_MS);
        records.push(
          ...event(device, feedbackAt, { type: "feedback", data: { rating: Math.floor(random() * 11) } }),
        );
      }
      // The activity the ingest adds for the hours these records show the device reporting in.
      for (const exposed of exposureHours(records)) {
        const key = `${exposed.hourMs}|${exposed.tags.firmware}`;
        if (device.lastExposureKey !== key) {
          const last = device.lastReportMs;
          const gapMs = last !== undefined && exposed.firstMs > last ? exposed.firstMs - last : undefined;
          points.push(activityPoint(exposed.tags, exposed.hourMs, gapMs));
          if (gapMs !== undefined) device.state.gapsMs = [...device.state.gapsMs, gapMs].slice(-GAP_SAMPLES);
          device.lastExposureKey = key;
        }
        device.lastReportMs = Math.max(exposed.lastMs, device.lastReportMs ?? 0);
      }
      for (const record of records) points.push(record.point);
      if (hourMs + HOUR_MS >= device.stopMs) {
        const lastMs = device.state.lastReportMs ?? at;
        // A few minutes after its last report, and before the end even when that report came just before it.
        const goneMs = Math.min(lastMs + 5 * MINUTE_MS, Math.floor((lastMs + endMs) / 2));
        if (device.ending === "disconnect") points.push(presence(device, goneMs, "offline", "broker"));
        if (device.ending === "will") {
          // The broker publishes the will once the keepalive lapses.
          const willAt = lastMs + 90_000;
          if (willAt < endMs) points.push(presence(device, willAt, "offline", "will"));
        }
      }
    }
    if (hourMs + HOUR_MS >= endMs) {
      // The ingest writes device_state as it goes; its last point per device is what stays.
      points.push(...fleet.flatMap((device) => deviceStatePoints(device)));
    }
    // What would happen after the end (a reconnect after a late reboot) has not happened yet.
    yield hourMs + HOUR_MS >= endMs
      ? points.filter((p) => BigInt(p.timeNs) < BigInt(endMs) * 1_000_000n)
      : points;
  }
}

/** The device's device_state point as the ingest leaves it once the history has arrived. */
function deviceStatePoints(device: Device): Point[] {
  const { slot, firstMs, gapsMs, lastReportMs, lastSeenMs, presence, update } = device.state;
  const record = { ...device.meta, slot, gapsMs, ...(firstMs === undefined ? {} : { firstMs }) };
  const activity = {
    ...(lastReportMs === undefined ? {} : { lastReportMs }),
    ...(lastSeenMs === undefined ? {} : { lastSeenMs }),
    ...(presence === undefined ? {} : { presence }),
  };
  return [deviceStatePoint({ deviceId: device.id, record, activity, updatedMs: lastSeenMs ?? 0, update })];
}
