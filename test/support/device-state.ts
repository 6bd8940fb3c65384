import { UNKNOWN } from "../../contract/messages.js";
import type { DeviceActivity, PresenceSource } from "../../ingest/device-state.js";
import type { DeviceMetaRecord } from "../../ingest/journal.js";
import { deviceStatePoint, type FirmwareUpdate } from "../../ingest/to-points.js";
import { type FieldValue, MEASUREMENTS, type Point } from "../../storage/schema.js";

// device_state as the ingest would have left it after writing these points: for tests that write raw
// points with the ingest's builders rather than through a running ingest (docs/storage.md "Read models").

const REPORTS: ReadonlySet<string> = new Set(
  (["device", "telemetry", "fault", "event", "command"] as const).map((k) => MEASUREMENTS[k].name),
);
/** Reports stored at the device's time (a hello is stored at receive time). */
const TIMESTAMPED: ReadonlySet<string> = new Set(
  (["telemetry", "fault", "event", "command"] as const).map((k) => MEASUREMENTS[k].name),
);

const number = (value: FieldValue | undefined) =>
  typeof value === "number" ? value : typeof value === "object" ? value.int : undefined;
const pointMs = (p: Point) => Number(BigInt(p.timeNs) / 1_000_000n);

type Folded = {
  meta: DeviceMetaRecord & { slot: number };
  metaMs: number;
  activity: DeviceActivity;
  gaps: Array<[number, number]>;
  update?: FirmwareUpdate;
};

/** One device_state point per device the points speak of, slots in order of first appearance. */
export function deviceStatesOf(points: readonly Point[], updatedMs: number): Point[] {
  const devices = new Map<string, Folded>();
  for (const p of points) {
    const id = p.tags.device;
    if (id === undefined) continue;
    let d = devices.get(id);
    if (d === undefined) {
      const meta = {
        kind: UNKNOWN,
        model: UNKNOWN,
        firmware: UNKNOWN,
        hardware: "",
        region: UNKNOWN,
        isp: "",
        serial: "",
      };
      d = { meta: { ...meta, slot: devices.size + 1 }, metaMs: -1, activity: {}, gaps: [] };
      devices.set(id, d);
    }
    const atMs = number(p.fields.received_ms) ?? pointMs(p);
    const { activity } = d;
    if (p.measurement === MEASUREMENTS.activity.name) {
      const gap = number(p.fields.gap_ms);
      if (gap !== undefined) d.gaps.push([pointMs(p), gap]);
      continue;
    }
    d.meta.firstMs = Math.min(d.meta.firstMs ?? atMs, atMs);
    activity.lastSeenMs = Math.max(activity.lastSeenMs ?? atMs, atMs);
    const presence = p.measurement === MEASUREMENTS.presence.name;
    if (REPORTS.has(p.measurement) || (presence && p.tags.source === "device"))
      activity.lastReportMs = Math.max(activity.lastReportMs ?? atMs, atMs);
    if (TIMESTAMPED.has(p.measurement))
      activity.lastReportDeviceMs = Math.max(activity.lastReportDeviceMs ?? pointMs(p), pointMs(p));
    if (presence && (activity.presence?.atMs ?? -1) <= atMs) {
      const state = p.fields.state === "offline" ? "offline" : "online";
      activity.presence = { state, atMs, source: (p.tags.source ?? "broker") as PresenceSource };
    }
    if (p.measurement === MEASUREMENTS.device.name && atMs >= d.metaMs) {
      const { kind, model, firmware, hardware, region, isp } = p.tags;
      const serial = typeof p.fields.serial === "string" ? p.fields.serial : "";
      Object.assign(d.meta, { kind, model, firmware, hardware, region, isp, serial });
      d.metaMs = atMs;
    }
    const update = p.measurement === MEASUREMENTS.event.name && p.tags.type === "firmware_update";
    if (update && p.fields.result === "success" && typeof p.fields.to === "string") {
      if (atMs >= (d.update?.atMs ?? -1)) {
        const from = typeof p.fields.from === "string" ? p.fields.from : UNKNOWN;
        d.update = { atMs, deviceMs: pointMs(p), from, to: p.fields.to };
      }
      if (atMs >= d.metaMs) {
        d.meta.firmware = p.fields.to;
        d.metaMs = atMs;
      }
    }
  }
  return [...devices].map(([deviceId, d]) => {
    const gapsMs = d.gaps.sort(([a], [b]) => a - b).map(([, gap]) => gap);
    const record = gapsMs.length === 0 ? d.meta : { ...d.meta, gapsMs: gapsMs.slice(-24) };
    return deviceStatePoint({ deviceId, record, activity: d.activity, updatedMs, update: d.update });
  });
}
