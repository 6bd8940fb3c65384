import { describe, expect, test } from "vitest";
import { compareDeviceRates, type DeviceExposure, judgeFamily } from "../../analytics/device-rates.js";
import {
  assembleVersions,
  type CohortTally,
  compareCohorts,
  type DeviceFaults,
  devicesByVersion,
  versionKey,
} from "../../analytics/firmware-cohorts.js";

const DAY = Date.UTC(2024, 3, 1);
const D = 86_400_000;
const window = { fromMs: DAY, toMs: DAY + 2 * D };
const iso = (ms: number) => new Date(ms).toISOString();

describe("devicesByVersion", () => {
  const row = (device: string, firmware: string, hours: number, faults: CohortTally["faults"] = []) => ({
    device,
    model: "M",
    firmware,
    hours,
    faults,
  });

  test("adds up a device's rows of one version (two regions) and keeps its versions apart", () => {
    const byVersion = devicesByVersion([
      row("a", "1.0", 10, [{ severity: "error", code: "E1", n: 2 }]),
      row("a", "1.0", 5, [{ severity: "error", code: "E1", n: 1 }]),
      row("a", "1.1", 7, [{ severity: "critical", code: "C9", n: 1 }]),
      row("b", "1.0", 3),
      { ...row("x", "9", 4), model: "N" },
    ]);
    expect([...byVersion.keys()]).toEqual(["M", "N"]);
    expect(byVersion.get("M")?.get("1.0")).toEqual([
      { device: "a", exposureHours: 15, faults: [{ severity: "error", code: "E1", n: 3 }] },
      { device: "b", exposureHours: 3, faults: [] },
    ]);
    expect(byVersion.get("M")?.get("1.1")).toEqual([
      { device: "a", exposureHours: 7, faults: [{ severity: "critical", code: "C9", n: 1 }] },
    ]);
  });

  test("leaves out a device without exposure on a version, and a version without any device", () => {
    const byVersion = devicesByVersion([row("a", "1.0", 0, [{ severity: "error", code: "E1", n: 1 }])]);
    expect(byVersion.size).toBe(0);
  });
});

describe("compareCohorts", () => {
  const faults = (e1: number, e2: number, c9: number): DeviceFaults["faults"] =>
    [
      { severity: "error", code: "E1", n: e1 },
      { severity: "error", code: "E2", n: e2 },
      { severity: "critical", code: "C9", n: c9 },
    ].filter((f) => f.n > 0);
  const baseline = {
    firmware: "1.0",
    devices: [
      { device: "b1", exposureHours: 1_000, faults: faults(2, 1, 0) },
      { device: "b2", exposureHours: 600, faults: faults(1, 1, 0) },
      { device: "b3", exposureHours: 400, faults: faults(1, 0, 0) },
    ],
  };
  const candidate = {
    firmware: "1.1",
    devices: [
      { device: "c1", exposureHours: 500, faults: faults(4, 0, 1) },
      { device: "c2", exposureHours: 500, faults: faults(2, 0, 0) },
      // Listed without exposure: not a device of the cohort.
      { device: "c3", exposureHours: 0, faults: [] },
    ],
  };
  /** Hand-made per-device counts, in the cohorts' device order. */
  const sides = (b: number[], c: number[]) => ({
    baseline: baseline.devices.map((d, i): DeviceExposure => ({ ...d, count: b[i] ?? 0 })),
    candidate: candidate.devices.slice(0, 2).map((d, i): DeviceExposure => ({ ...d, count: c[i] ?? 0 })),
  });
  const strip = ({ faults: _, ...d }: DeviceExposure & { faults?: unknown }) => d;
  const expected = (b: number[], c: number[]) => {
    const { baseline: bs, candidate: cs } = sides(b, c);
    return compareDeviceRates({ baseline: bs.map(strip), candidate: cs.map(strip) });
  };

  test("compares overall, critical and per code on per-device counts, most faults first", () => {
    const result = compareCohorts({ model: "M", window, severity: undefined, baseline, candidate });
    if (!result.ok) throw new Error("expected a comparison");
    const c = result.value;
    expect(c).toMatchObject({ model: "M", from: iso(DAY), to: iso(DAY + 2 * D), severity: null });
    expect(c.baseline).toEqual({ firmware: "1.0", devices: 3, exposureHours: 2_000 });
    expect(c.candidate).toEqual({ firmware: "1.1", devices: 2, exposureHours: 1_000 });
    expect(c.overall).toEqual(expected([3, 2, 1], [5, 2]));
    expect(c.critical).toEqual(expected([0, 0, 0], [1, 0]));
    expect(c.byCode.map((x) => x.code)).toEqual(["E1", "E2", "C9"]);
  });

  test("judges the codes of a comparison together as one family", () => {
    const result = compareCohorts({ model: "M", window, severity: undefined, baseline, candidate });
    if (!result.ok) throw new Error("expected a comparison");
    const family = judgeFamily([
      expected([2, 1, 1], [4, 2]),
      expected([1, 1, 0], [0, 0]),
      expected([0, 0, 0], [1, 0]),
    ]);
    expect(result.value.byCode.map((x) => x.comparison)).toEqual(family);
    expect(result.value.byCode.map((x) => x.comparison.evidence.familySize)).toEqual([3, 3, 3]);
    // Overall and critical are judged on their own.
    expect(result.value.overall.evidence.familySize).toBe(1);
  });

  test("counts only the severity asked for in overall and per code, but critical always", () => {
    const result = compareCohorts({ model: "M", window, severity: "error", baseline, candidate });
    if (!result.ok) throw new Error("expected a comparison");
    expect(result.value.overall).toEqual(expected([3, 2, 1], [4, 2]));
    expect(result.value.byCode.map((x) => x.code)).toEqual(["E1", "E2"]);
    expect(result.value.critical).toEqual(expected([0, 0, 0], [1, 0]));
    expect(result.value.severity).toBe("error");
  });

  const none = { firmware: "9", devices: [{ device: "z", exposureHours: 0, faults: [] }] };
  test.each([
    [none, candidate, ["baseline"]],
    [baseline, { ...none, devices: [] }, ["candidate"]],
    [none, none, ["baseline", "candidate"]],
  ])("names the cohorts without a device with exposure", (b, c, cohorts) => {
    expect(compareCohorts({ model: "M", window, severity: undefined, baseline: b, candidate: c })).toEqual({
      ok: false,
      error: { reason: "no_exposure", cohorts },
    });
  });
});

describe("assembleVersions", () => {
  const days = [
    {
      day: DAY,
      versions: new Map([
        [versionKey("P", "1.9"), 3],
        [versionKey("P", "1.10"), 1],
      ]),
      models: new Map([["P", 4]]),
    },
    { day: DAY + D, versions: new Map([[versionKey("P", "1.10"), 2]]), models: new Map() },
  ];
  const versions = assembleVersions({
    window,
    hours: [
      { model: "P", firmware: "1.10", hours: 5 },
      { model: "P", firmware: "1.9", hours: 30 },
      { model: "P", firmware: "1.10", hours: 7 },
      { model: "A", firmware: "3", hours: 1 },
    ],
    firstSeen: new Map([[versionKey("P", "1.9"), DAY - 10 * D]]),
    devices: new Map([
      [versionKey("P", "1.9"), 3],
      [versionKey("P", "1.10"), 2],
    ]),
    devicesNow: new Map([[versionKey("P", "1.10"), 2]]),
    days,
  });

  test("lists models by name and each model's versions oldest first, with exposure added up", () => {
    expect(versions.models.map((m) => m.model)).toEqual(["A", "P"]);
    const p = versions.models[1];
    expect(p?.versions.map((v) => [v.firmware, v.exposureHours, v.devices, v.devicesNow])).toEqual([
      ["1.9", 30, 3, 0],
      ["1.10", 12, 2, 2],
    ]);
  });

  test("gives adoption as each day's share of the model's devices, null on a day without any", () => {
    const p = versions.models[1];
    expect(p?.devicesByDay).toEqual([
      { day: iso(DAY), devices: 4 },
      { day: iso(DAY + D), devices: 0 },
    ]);
    expect(p?.versions[1]?.adoption).toEqual([
      { day: iso(DAY), devices: 1, share: 0.25 },
      { day: iso(DAY + D), devices: 2, share: null },
    ]);
  });

  test("takes first seen from history, or the window's start when unknown", () => {
    const p = versions.models[1];
    expect(p?.versions[0]?.firstSeen).toBe(iso(DAY - 10 * D));
    expect(p?.versions[1]?.firstSeen).toBe(iso(DAY));
  });
});
