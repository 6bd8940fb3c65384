import { describe, expect, test } from "vitest";
import {
  assembleVersions,
  compareCohorts,
  type FaultCount,
  versionKey,
} from "../../analytics/firmware-cohorts.js";
import { compareRates } from "../../analytics/rate-ratio.js";

const DAY = Date.UTC(2024, 3, 1);
const D = 86_400_000;
const window = { fromMs: DAY, toMs: DAY + 2 * D };
const iso = (ms: number) => new Date(ms).toISOString();

describe("compareCohorts", () => {
  const baseline = { firmware: "1.0", devices: 10, exposureHours: 2_000 };
  const candidate = { firmware: "1.1", devices: 8, exposureHours: 1_000 };
  const faults: FaultCount[] = [
    { firmware: "1.0", severity: "error", code: "E1", n: 4 },
    { firmware: "1.1", severity: "error", code: "E1", n: 6 },
    { firmware: "1.1", severity: "critical", code: "C9", n: 1 },
    { firmware: "1.0", severity: "error", code: "E2", n: 2 },
    // Another firmware of the model in the rows is counted for neither side.
    { firmware: "0.9", severity: "error", code: "E1", n: 50 },
  ];
  const expected = (b: number, c: number) => {
    const result = compareRates({
      baseline: { count: b, exposureHours: baseline.exposureHours },
      candidate: { count: c, exposureHours: candidate.exposureHours },
    });
    if (!result.ok) throw new Error("unexpected");
    return { ...result.comparison, evidence: expect.anything() };
  };

  test("compares overall, critical and per code, most faults first", () => {
    const result = compareCohorts({ model: "M", window, severity: undefined, baseline, candidate, faults });
    if (!result.ok) throw new Error("expected a comparison");
    const c = result.value;
    expect(c).toMatchObject({ model: "M", from: iso(DAY), to: iso(DAY + 2 * D), severity: null });
    expect(c.overall).toEqual(expected(6, 7));
    expect(c.critical).toEqual(expected(0, 1));
    expect(c.byCode.map((x) => x.code)).toEqual(["E1", "E2", "C9"]);
    expect(c.byCode[0]?.comparison).toEqual(expected(4, 6));
  });

  test("counts only the severity asked for in overall and per code, but critical always", () => {
    const result = compareCohorts({ model: "M", window, severity: "error", baseline, candidate, faults });
    if (!result.ok) throw new Error("expected a comparison");
    expect(result.value.overall).toEqual(expected(6, 6));
    expect(result.value.byCode.map((x) => x.code)).toEqual(["E1", "E2"]);
    expect(result.value.critical).toEqual(expected(0, 1));
    expect(result.value.severity).toBe("error");
  });

  test.each([
    [{ ...baseline, exposureHours: 0 }, candidate, ["baseline"]],
    [baseline, { ...candidate, exposureHours: 0 }, ["candidate"]],
    [{ ...baseline, exposureHours: 0 }, { ...candidate, exposureHours: 0 }, ["baseline", "candidate"]],
  ])("names the cohorts without exposure", (b, c, cohorts) => {
    expect(
      compareCohorts({ model: "M", window, severity: undefined, baseline: b, candidate: c, faults }),
    ).toEqual({ ok: false, error: { reason: "no_exposure", cohorts } });
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
