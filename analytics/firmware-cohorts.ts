import type { FirmwareComparison, FirmwareVersions, RateComparison } from "../contract/api/fleet.js";
import type { Severity } from "../contract/messages.js";
import { err, ok, type Result } from "../contract/result.js";
import { iso } from "../contract/time.js";
import { compareDeviceRates, type DeviceExposure, judgeFamily } from "./device-rates.js";
import { compareVersions } from "./versions.js";

// Firmware cohorts: which versions a model runs and how fast they spread (adoption), and the fault rates
// of two versions of one model compared device by device (analytics/device-rates.ts).

export type Side = "baseline" | "candidate";
export type FaultTally = { severity: string; code: string; n: number };

/** One device's exposure and faults in a cohort (a version of a model) over a window. */
export type DeviceFaults = { device: string; exposureHours: number; faults: readonly FaultTally[] };

/** One row of the per-device cohort tallies (storage/rollup-schema.ts DeviceCohortTally has these fields). */
export type CohortTally = {
  device: string;
  model: string;
  firmware: string;
  hours: number;
  faults: readonly FaultTally[];
};

/** A version's devices with exposure. */
export type CohortDevices = { firmware: string; devices: readonly DeviceFaults[] };

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The map's value for key, made and kept first when missing. */
function entry<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let value = map.get(key);
  if (value === undefined) {
    value = make();
    map.set(key, value);
  }
  return value;
}

/**
 * Per model, per firmware, each device's exposure and faults added up over the rows given (a device that
 * moved region in the window has a row per region). Devices without exposure on a version are left out of
 * it: a cohort is the devices that ran it.
 */
export function devicesByVersion(tallies: Iterable<CohortTally>): Map<string, Map<string, DeviceFaults[]>> {
  const held = new Map<
    string,
    Map<string, Map<string, { exposureHours: number; faults: Map<string, FaultTally> }>>
  >();
  for (const t of tallies) {
    const versions = entry(held, t.model, () => new Map());
    const devices = entry(versions, t.firmware, () => new Map());
    const d = entry(devices, t.device, () => ({ exposureHours: 0, faults: new Map<string, FaultTally>() }));
    d.exposureHours += t.hours;
    for (const f of t.faults) {
      const key = `${f.severity}\u0000${f.code}`;
      const sum = d.faults.get(key);
      if (sum === undefined) d.faults.set(key, { ...f });
      else sum.n += f.n;
    }
  }
  const result = new Map<string, Map<string, DeviceFaults[]>>();
  for (const [model, versions] of held) {
    const out = new Map<string, DeviceFaults[]>();
    for (const [firmware, devices] of versions) {
      const list = [...devices]
        .filter(([, d]) => d.exposureHours > 0)
        .map(([device, d]) => ({ device, exposureHours: d.exposureHours, faults: [...d.faults.values()] }))
        .sort((a, b) => byText(a.device, b.device));
      if (list.length > 0) out.set(firmware, list);
    }
    if (out.size > 0) result.set(model, out);
  }
  return result;
}

/** Each device's exposure and count of the faults `keep` selects: what compareDeviceRates takes. */
export const exposures = (
  devices: readonly DeviceFaults[],
  keep: (f: FaultTally) => boolean,
): DeviceExposure[] =>
  devices.map((d) => ({
    device: d.device,
    exposureHours: d.exposureHours,
    count: d.faults.reduce((n, f) => (keep(f) ? n + f.n : n), 0),
  }));

const hoursOf = (devices: readonly DeviceFaults[]) => devices.reduce((h, d) => h + d.exposureHours, 0);
const faultsOf = (devices: readonly DeviceFaults[], keep: (f: FaultTally) => boolean) =>
  devices.reduce((n, d) => n + d.faults.reduce((m, f) => (keep(f) ? m + f.n : m), 0), 0);

/**
 * Two versions of one model compared device by device: overall (faults of `severity`, or all), critical
 * faults, and per code (of `severity`), most faults first, the codes judged together as one family (Holm,
 * analytics/device-rates.ts judgeFamily). Not ok, naming the sides, when a cohort has no device with exposure.
 */
export function compareCohorts(
  input: DeviceInput,
): Result<FirmwareComparison, { reason: "no_exposure"; cohorts: Side[] }> {
  const sides = { baseline: input.baseline, candidate: input.candidate };
  const withExposure = (side: Side) => sides[side].devices.filter((d) => d.exposureHours > 0);
  const devices = { baseline: withExposure("baseline"), candidate: withExposure("candidate") };
  const missing = (["baseline", "candidate"] as const).filter((side) => devices[side].length === 0);
  if (missing.length > 0) return err({ reason: "no_exposure", cohorts: missing });

  const compare = (keep: (f: FaultTally) => boolean) =>
    compareDeviceRates({
      baseline: exposures(devices.baseline, keep),
      candidate: exposures(devices.candidate, keep),
    });
  const ofSeverity = (f: FaultTally) => input.severity === undefined || f.severity === input.severity;
  const all = [...devices.baseline, ...devices.candidate];
  const codes = [...new Set(all.flatMap((d) => d.faults.filter(ofSeverity).map((f) => f.code)))]
    .map((code) => ({ code, total: faultsOf(all, (f) => ofSeverity(f) && f.code === code) }))
    .sort((a, b) => b.total - a.total || byText(a.code, b.code))
    .map(({ code }) => code);
  const judged = judgeFamily(codes.map((code) => compare((f) => ofSeverity(f) && f.code === code)));
  const cohort = (side: Side) => ({
    firmware: sides[side].firmware,
    devices: devices[side].length,
    exposureHours: hoursOf(devices[side]),
  });
  return ok({
    model: input.model,
    from: iso(input.window.fromMs),
    to: iso(input.window.toMs),
    severity: input.severity ?? null,
    baseline: cohort("baseline"),
    candidate: cohort("candidate"),
    overall: compare(ofSeverity),
    critical: compare((f) => f.severity === "critical"),
    byCode: codes.map((code, i) => ({ code, comparison: judged[i] as RateComparison })),
  });
}

type DeviceInput = {
  model: string;
  window: { fromMs: number; toMs: number };
  severity: Severity | undefined;
  baseline: CohortDevices;
  candidate: CohortDevices;
};

/** What the version list is assembled from; keys of the maps are versionKey(model, firmware). */
export type VersionsInput = {
  window: { fromMs: number; toMs: number };
  /** Exposure hours per version in the window (rows of any bucket; added up here). */
  hours: ReadonlyArray<{ model: string; firmware: string; hours: number }>;
  firstSeen: ReadonlyMap<string, number>;
  /** Distinct active devices per version in the window, and in its last 24 h. */
  devices: ReadonlyMap<string, number>;
  devicesNow: ReadonlyMap<string, number>;
  /** Per UTC day of the window: distinct active devices per version and per model. */
  days: ReadonlyArray<{
    day: number;
    versions: ReadonlyMap<string, number>;
    models: ReadonlyMap<string, number>;
  }>;
};

export const versionKey = (model: string, firmware: string) => `${model}\u0000${firmware}`;

/** Versions with exposure in the window per model (models by name), oldest version first. */
export function assembleVersions(input: VersionsInput): FirmwareVersions {
  const hoursByVersion = new Map<string, { model: string; firmware: string; hours: number }>();
  for (const row of input.hours) {
    const key = versionKey(row.model, row.firmware);
    const entry = hoursByVersion.get(key) ?? { model: row.model, firmware: row.firmware, hours: 0 };
    entry.hours += row.hours;
    hoursByVersion.set(key, entry);
  }
  const models = new Map<string, FirmwareVersions["models"][number]>();
  for (const [key, v] of hoursByVersion) {
    let entry = models.get(v.model);
    if (entry === undefined) {
      entry = {
        model: v.model,
        devicesByDay: input.days.map((d) => ({ day: iso(d.day), devices: d.models.get(v.model) ?? 0 })),
        versions: [],
      };
      models.set(v.model, entry);
    }
    entry.versions.push({
      firmware: v.firmware,
      firstSeen: iso(input.firstSeen.get(key) ?? input.window.fromMs),
      devicesNow: input.devicesNow.get(key) ?? 0,
      devices: input.devices.get(key) ?? 0,
      exposureHours: v.hours,
      adoption: input.days.map((d) => {
        const onVersion = d.versions.get(key) ?? 0;
        const all = d.models.get(v.model) ?? 0;
        return { day: iso(d.day), devices: onVersion, share: all > 0 ? onVersion / all : null };
      }),
    });
  }
  for (const entry of models.values()) entry.versions.sort((a, b) => compareVersions(a.firmware, b.firmware));
  return {
    from: iso(input.window.fromMs),
    to: iso(input.window.toMs),
    models: [...models.values()].sort((a, b) => byText(a.model, b.model)),
  };
}
