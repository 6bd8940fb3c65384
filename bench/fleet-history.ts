import type { Fault } from "../contract/messages.js";
import { createRandom } from "../device-sim/random.js";
import type { DeviceMetaRecord } from "../ingest/journal.js";
import { activityPoint, deviceTags, HOUR_MS, messagePoints } from "../ingest/to-points.js";
import type { Point } from "../storage/schema.js";

// A fleet's stored history as the ingest would have written it: one activity point per device-hour, and
// faults and events drawn per device-hour, built with the ingest's own point functions.

const LINES = [
  {
    kind: "modem",
    model: "FQ-Modem 7590",
    share: 0.4,
    firmwares: ["7.29", "7.31", "7.57"],
    codes: ["DSL_RESYNC", "WAN_DOWN", "DNS_FAILURE", "WIFI_RADIO_CRASH", "OVERHEAT"],
  },
  {
    kind: "modem",
    model: "FQ-Modem 5530",
    share: 0.3,
    firmwares: ["7.31", "8.02"],
    codes: ["DSL_RESYNC", "WAN_DOWN", "DNS_FAILURE", "WIFI_RADIO_CRASH"],
  },
  {
    kind: "printer",
    model: "FQ-Print Mk3",
    share: 0.2,
    firmwares: ["3.1.0", "3.2.0"],
    codes: ["THERMAL_RUNAWAY", "LAYER_SHIFT", "FILAMENT_RUNOUT", "NOZZLE_CLOG", "FAN_FAILURE"],
  },
  {
    kind: "printer",
    model: "FQ-Print Mini",
    share: 0.1,
    firmwares: ["1.4.2"],
    codes: ["LAYER_SHIFT", "FILAMENT_RUNOUT", "BED_LEVEL_DRIFT"],
  },
] as const;
const REGIONS = ["eu-west", "eu-central", "eu-north", "us-east", "us-west"] as const;
const SEVERITIES = ["info", "warning", "warning", "error", "error", "critical"] as const;
/** Per device-hour. */
const FAULT_RATE = 0.02;
const REBOOT_RATE = 0.002;
const FEEDBACK_RATE = 0.001;
const ONLINE_SHARE = 0.92;

export type HistoryOptions = { devices: number; days: number; endMs: number; seed: number };

/** Yields batches of points, hour by hour, for every device. */
export function* fleetHistory(options: HistoryOptions): Generator<Point[]> {
  const rng = createRandom(options.seed);
  const random = rng.next;
  const pick = <T>(items: readonly [T, ...T[]]) => rng.pick(items);
  const fleet = Array.from({ length: options.devices }, (_, i) => {
    const roll = random();
    let cumulative = 0;
    const line =
      LINES.find((l) => {
        cumulative += l.share;
        return roll < cumulative;
      }) ?? LINES[0];
    const meta: DeviceMetaRecord = {
      kind: line.kind,
      model: line.model,
      firmware: pick(line.firmwares),
      hardware: "rev A",
      region: pick(REGIONS),
      isp: "bench",
      serial: `S-${i}`,
    };
    return { id: `${line.kind}-${String(i).padStart(5, "0")}`, meta, codes: line.codes, seq: 0 };
  });
  const startMs = Math.floor((options.endMs - options.days * 86_400_000) / HOUR_MS) * HOUR_MS;
  const ctx = (meta: DeviceMetaRecord, receivedMs: number) => ({
    meta,
    receivedMs,
    clockSkewFutureMs: 600_000,
    clockSkewPastMs: 400 * 86_400_000,
    discriminator: 0,
  });
  for (let hourMs = startMs; hourMs < options.endMs; hourMs += HOUR_MS) {
    const points: Point[] = [];
    for (const device of fleet) {
      if (random() > ONLINE_SHARE) continue;
      points.push(activityPoint(deviceTags(device.id, device.meta), hourMs, 60_000));
      const at = hourMs + Math.floor(random() * HOUR_MS);
      if (random() < FAULT_RATE) {
        const fault: Fault = {
          ts: at,
          seq: ++device.seq,
          code: pick(device.codes),
          severity: pick(SEVERITIES),
        };
        const { records } = messagePoints(
          { channel: "fault", deviceId: device.id, body: fault },
          ctx(device.meta, at),
        );
        points.push(...records.map((r) => r.point));
      }
      if (random() < REBOOT_RATE) {
        const body = { ts: at, seq: ++device.seq, type: "reboot" as const, data: { reason: "watchdog" } };
        const { records } = messagePoints(
          { channel: "event", deviceId: device.id, body },
          ctx(device.meta, at),
        );
        points.push(...records.map((r) => r.point));
      }
      if (random() < FEEDBACK_RATE) {
        const body = {
          ts: at,
          seq: ++device.seq,
          type: "feedback" as const,
          data: { rating: Math.floor(random() * 11) },
        };
        const { records } = messagePoints(
          { channel: "event", deviceId: device.id, body },
          ctx(device.meta, at),
        );
        points.push(...records.map((r) => r.point));
      }
    }
    yield points;
  }
}
