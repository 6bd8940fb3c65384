import { describe, expect, it } from "vitest";
import { fleetHistory } from "../../bench/fleet-history.js";
import { DAY_MS, HOUR_MS } from "../../contract/time.js";
import type { Point } from "../../storage/schema.js";

const END_MS = Date.UTC(2026, 0, 31);
const OPTIONS = { devices: 400, days: 3, endMs: END_MS, seed: 7 };
const START_MS = END_MS - OPTIONS.days * DAY_MS;

const all = (options = OPTIONS) => [...fleetHistory(options)].flat();
const ms = (point: Point) => Number(BigInt(point.timeNs) / 1_000_000n);
const of = (points: Point[], measurement: string) => points.filter((p) => p.measurement === measurement);
const byDevice = (points: Point[]) => {
  const map = new Map<string, Point[]>();
  for (const p of points) {
    const id = p.tags.device ?? "";
    map.set(id, [...(map.get(id) ?? []), p]);
  }
  return map;
};

describe("fleetHistory", () => {
  const points = all();
  // Read-model copies (fault_list) carry the device as a field, not a tag.
  const deviceIds = new Set(points.flatMap((p) => (p.tags.device === undefined ? [] : [p.tags.device])));

  it("is the same for the same seed and differs for another", () => {
    expect(JSON.stringify(all())).toBe(JSON.stringify(points));
    expect(JSON.stringify(all({ ...OPTIONS, seed: 8 }))).not.toBe(JSON.stringify(points));
  });

  it("yields one batch per hour, every point inside the window", () => {
    expect([...fleetHistory(OPTIONS)]).toHaveLength(OPTIONS.days * 24);
    expect(deviceIds.size).toBe(OPTIONS.devices);
    // device_state's time is the device's slot, not a time.
    for (const p of points.filter((p) => p.measurement !== "device_state")) {
      expect(ms(p)).toBeGreaterThanOrEqual(START_MS);
      expect(ms(p)).toBeLessThan(END_MS);
    }
  });

  it("starts every device with a broker connect and a hello carrying its serial and tags", () => {
    const hellos = byDevice(of(points, "device"));
    const connects = byDevice(of(points, "presence").filter((p) => p.fields.state === "online"));
    for (const id of deviceIds) {
      const first = hellos.get(id)?.[0];
      expect(first?.fields.serial).toMatch(/^(M7590|M5530|PMK3|PMINI)-[0-9A-F]{8}$/);
      expect(first?.tags).toMatchObject({
        kind: expect.any(String),
        model: expect.any(String),
        hardware: expect.any(String),
      });
      expect(ms(first as Point)).toBeLessThan(START_MS + HOUR_MS);
      const connect = connects.get(id)?.[0];
      expect(connect?.tags.source).toBe("broker");
      expect(ms(connect as Point)).toBeLessThan(ms(first as Point));
    }
  });

  it("sends a hello with the new firmware after each successful update, and tags later points with it", () => {
    const updates = of(points, "event").filter((p) => p.tags.type === "firmware_update");
    expect(updates.length).toBeGreaterThan(10);
    const hellos = byDevice(of(points, "device"));
    const telemetry = byDevice(of(points, "telemetry"));
    for (const update of updates) {
      const id = update.tags.device ?? "";
      expect(update.fields.result).toBe("success");
      const after = (hellos.get(id) ?? []).filter((p) => ms(p) > ms(update));
      expect(after[0]?.tags.firmware).toBe(update.fields.to);
      const later = (telemetry.get(id) ?? []).filter((p) => ms(p) > ms(update) + HOUR_MS);
      for (const p of later) expect(p.tags.firmware).toBe(update.fields.to);
    }
  });

  it("has one telemetry sample with 3-4 metrics and one activity point per device-hour it reports in", () => {
    const telemetry = of(points, "telemetry");
    const deviceHours = OPTIONS.devices * OPTIONS.days * 24;
    expect(telemetry.length).toBeGreaterThan(deviceHours * 0.85);
    expect(telemetry.length).toBeLessThanOrEqual(deviceHours);
    const bookkeeping = new Set(["seq", "received_ms", "skew_ms"]);
    for (const p of telemetry) {
      const metrics = Object.keys(p.fields).filter((k) => !bookkeeping.has(k));
      expect(metrics.length).toBeGreaterThanOrEqual(3);
      expect(metrics.length).toBeLessThanOrEqual(4);
      expect(metrics).toContain("uptime_s");
    }
    const activity = of(points, "activity");
    const hours = new Set(activity.map((p) => `${p.tags.device}|${ms(p)}|${p.tags.firmware}`));
    expect(hours.size).toBe(activity.length);
    for (const p of telemetry) {
      expect(hours.has(`${p.tags.device}|${Math.floor(ms(p) / HOUR_MS) * HOUR_MS}|${p.tags.firmware}`)).toBe(
        true,
      );
    }
    const gaps = activity.map((p) => p.fields.gap_ms).filter((g) => g !== undefined);
    expect(gaps.length).toBeGreaterThan(activity.length * 0.9);
  });

  it("ends with ~8% disconnected in the last two hours and some devices silent for days", () => {
    const reports = byDevice([...of(points, "telemetry"), ...of(points, "fault"), ...of(points, "event")]);
    const lastReport = (id: string) => Math.max(...(reports.get(id) ?? []).map(ms));
    const presence = byDevice(of(points, "presence"));
    const lastPresence = (id: string) => presence.get(id)?.at(-1);
    const offline = [...deviceIds].filter((id) => {
      const last = lastPresence(id ?? "");
      return (
        last?.fields.state === "offline" && last.tags.source === "broker" && ms(last) > END_MS - 3 * HOUR_MS
      );
    });
    expect(offline.length / OPTIONS.devices).toBeGreaterThan(0.04);
    expect(offline.length / OPTIONS.devices).toBeLessThan(0.13);
    for (const id of offline) expect(lastReport(id ?? "")).toBeGreaterThan(END_MS - 3 * HOUR_MS);
    const silent = [...deviceIds].filter((id) => lastReport(id ?? "") < END_MS - DAY_MS);
    expect(silent.length).toBeGreaterThan(0);
    const wills = of(points, "presence").filter((p) => p.tags.source === "will");
    for (const will of wills) expect(lastReport(will.tags.device ?? "")).toBeLessThan(ms(will));
  });

  it("draws faults, with a hot spot on one model and firmware", () => {
    const faults = of(points, "fault");
    expect(faults.length).toBeGreaterThan(0);
    for (const f of faults)
      expect(f.fields.fingerprint_key).toBe(`${f.tags.kind}/${f.tags.model}/${f.tags.code}`);
    const resyncs = faults.filter((f) => f.tags.code === "DSL_RESYNC" && f.tags.model === "FQ-Modem 7590");
    const hot = resyncs.filter((f) => f.tags.firmware === "7.57").length;
    expect(hot).toBeGreaterThan(resyncs.length - hot);
  });

  it("leaves one device_state point per device that agrees with its last hello, report and presence change", () => {
    const states = of(points, "device_state");
    expect(states).toHaveLength(OPTIONS.devices);
    const hellos = byDevice(of(points, "device"));
    const presence = byDevice(of(points, "presence"));
    const activity = byDevice(of(points, "activity"));
    const reports = byDevice([
      ...of(points, "telemetry"),
      ...of(points, "fault"),
      ...of(points, "event"),
      ...of(points, "device"),
    ]);
    for (const state of states) {
      const id = String(state.fields.device);
      const hello = hellos.get(id)?.at(-1);
      expect(state.fields.serial).toBe(hello?.fields.serial);
      expect(state.fields.firmware).toBe(hello?.tags.firmware);
      const last = presence.get(id)?.at(-1);
      expect(state.fields.presence).toBe(last?.fields.state);
      expect(state.fields.presence_source).toBe(last?.tags.source);
      const lastReceived = Math.max(
        ...(reports.get(id) ?? []).map((p) => (p.fields.received_ms as { int: number }).int),
      );
      expect(state.fields.last_report_ms).toEqual({ int: lastReceived });
      // Every activity point after the device's first carries a gap sample; the last 24 are kept.
      const hours = activity.get(id)?.length ?? 0;
      expect(state.fields.gap_samples).toEqual(hours > 1 ? { int: Math.min(24, hours - 1) } : undefined);
    }
  });
});
