import { describe, expect, test } from "vitest";
import {
  addCounts,
  type CohortSumRow,
  type Counts,
  type DeviceCohortSums,
  deviceSumsBy,
  emptyCounts,
  groupKey,
  groupOf,
  inSelection,
  selectionOf,
  sortedGroups,
  sumsBy,
  toMetrics,
} from "../../analytics/health-metrics.js";

const H = 3_600_000;
const DAY = Date.UTC(2024, 2, 4);

const sums = (over: Partial<CohortSumRow["sums"]> = {}): CohortSumRow["sums"] => ({
  hours: 0,
  faults: { info: 0, warning: 0, error: 0, critical: 0 },
  reboots: 0,
  rejections: 0,
  ratings: Array.from({ length: 11 }, () => 0),
  ...over,
});
const ratings = (given: Record<number, number>) => Array.from({ length: 11 }, (_, r) => given[r] ?? 0);

describe("toMetrics", () => {
  test("derives rates per 1,000 h, per device-day, the fault-free share and the mean rating", () => {
    const counts: Counts = {
      devices: 4,
      exposureHours: 48,
      faults: { info: 1, warning: 2, error: 0, critical: 3 },
      faultyDevices: 3,
      reboots: 6,
      rejections: 12,
      ratings: ratings({ 2: 1, 10: 3 }),
    };
    const m = toMetrics(counts);
    expect(m.faults).toMatchObject({ count: 6, per1000h: 125 });
    expect(m.faults.bySeverity.critical).toEqual({ count: 3, per1000h: 62.5 });
    expect(m.faultFreeShare).toBe(0.25);
    expect(m.reboots).toEqual({ count: 6, perDeviceDay: 3 });
    expect(m.rejections).toEqual({ count: 12, per1000h: 250 });
    expect(m.feedback).toEqual({ count: 4, mean: 8, distribution: ratings({ 2: 1, 10: 3 }) });
  });

  test("answers null rates without exposure, devices or ratings", () => {
    const m = toMetrics(emptyCounts());
    expect(m.faults.per1000h).toBeNull();
    expect(m.faultFreeShare).toBeNull();
    expect(m.reboots.perDeviceDay).toBeNull();
    expect(m.feedback.mean).toBeNull();
  });

  test("floors the fault-free share at 0 when more devices had faults than were active", () => {
    expect(toMetrics({ ...emptyCounts(), devices: 2, faultyDevices: 3 }).faultFreeShare).toBe(0);
  });
});

describe("sumsBy", () => {
  const rows: CohortSumRow[] = [
    { tags: { model: "M1", firmware: "1.0" }, startMs: DAY, sums: sums({ hours: 10, reboots: 1 }) },
    { tags: { model: "M1", firmware: "1.1" }, startMs: DAY + 5 * H, sums: sums({ hours: 2 }) },
    {
      tags: { model: "M2", firmware: "2.0" },
      startMs: DAY + 26 * H,
      sums: sums({
        hours: 3,
        faults: { info: 0, warning: 0, error: 1, critical: 0 },
        ratings: ratings({ 7: 2 }),
      }),
    },
  ];

  test("adds up rows per group, leaving distinct-device counts at 0", () => {
    const grouped = sumsBy(rows, ["model"], false);
    expect(sortedGroups(grouped).map(({ group, counts }) => [group, counts.exposureHours])).toEqual([
      [{ model: "M1" }, 12],
      [{ model: "M2" }, 3],
    ]);
    const m2 = grouped.get(groupKey({ model: "M2" }));
    expect(m2?.counts).toMatchObject({ devices: 0, faultyDevices: 0, faults: { error: 1 } });
    expect(m2?.counts.ratings[7]).toBe(2);
  });

  test("adds up per UTC day when daily, keyed by the day's start", () => {
    const daily = sumsBy(rows, [], true);
    expect(daily.get(groupKey({}, DAY))?.counts.exposureHours).toBe(12);
    expect(daily.get(groupKey({}, DAY + 24 * H))?.counts.exposureHours).toBe(3);
    expect(daily.size).toBe(2);
  });

  test("puts rows without a grouped tag in the group of the empty value", () => {
    const grouped = sumsBy([{ tags: {}, startMs: DAY, sums: sums({ hours: 1 }) }], ["region"], false);
    expect([...grouped.values()].map((g) => g.group)).toEqual([{ region: "" }]);
  });
});

describe("selections and groups", () => {
  test("a cohort is in a selection when it matches every tag the selection fixes", () => {
    const cohort = { kind: "modem", model: "M1", firmware: "1.0", region: "eu" };
    expect(inSelection({}, cohort)).toBe(true);
    expect(inSelection({ model: "M1", region: "eu" }, cohort)).toBe(true);
    expect(inSelection({ model: "M1", region: "us" }, cohort)).toBe(false);
  });

  test("selectionOf keeps only the tags given", () => {
    expect(selectionOf({ model: "M1", region: undefined })).toEqual({ model: "M1" });
  });

  test("groupKey tells groups and days apart, in any tag order", () => {
    expect(groupKey({ model: "M1", firmware: "1.0" })).toBe(groupKey({ firmware: "1.0", model: "M1" }));
    expect(groupKey({ model: "M1" })).not.toBe(groupKey({ firmware: "M1" }));
    expect(groupKey({}, DAY)).not.toBe(groupKey({}, DAY + 24 * H));
    expect(groupOf({ model: "M1", kind: "modem" }, ["model", "region"])).toEqual({ model: "M1", region: "" });
  });

  test("addCounts adds everything but the distinct-device counts", () => {
    const total = { ...emptyCounts(), devices: 5 };
    addCounts(total, {
      ...emptyCounts(),
      devices: 3,
      exposureHours: 7,
      reboots: 2,
      ratings: ratings({ 1: 1 }),
    });
    addCounts(total, { ...emptyCounts(), exposureHours: 1, rejections: 4 });
    expect(total).toMatchObject({ devices: 5, exposureHours: 8, reboots: 2, rejections: 4 });
    expect(total.ratings[1]).toBe(1);
  });
});

describe("deviceSumsBy", () => {
  const tally = (device: string, over: Partial<DeviceCohortSums> = {}): DeviceCohortSums => ({
    device,
    kind: "modem",
    model: "M1",
    firmware: "1.0",
    region: "eu",
    hours: 10,
    reboots: 0,
    rejections: 0,
    ratings: ratings({}),
    faults: [],
    ...over,
  });
  const hello: Record<string, { isp: string | null; hardware: string | null }> = {
    a: { isp: "1und1", hardware: "rev-a" },
    b: { isp: "1und1", hardware: "rev-b" },
    c: { isp: "telekom", hardware: null },
  };
  const rows = [
    tally("a", { faults: [{ severity: "error", n: 2 }], reboots: 1 }),
    // b changed firmware: one device, two cohorts.
    tally("b", { hours: 4, ratings: ratings({ 9: 1 }) }),
    tally("b", { firmware: "1.1", hours: 6, faults: [{ severity: "critical", n: 1 }], rejections: 3 }),
    tally("c", { region: "us", faults: [{ severity: "info", n: 5 }] }),
    // Faults without an hour of exposure: faulty, not active.
    tally("d", { hours: 0, faults: [{ severity: "warning", n: 1 }] }),
  ];
  const attributesOf = (device: string) => hello[device];

  test("groups by the ISP each device's hello names, counting a device once per group", () => {
    const { groups, total } = deviceSumsBy(rows, attributesOf, {}, ["isp"]);
    const byIsp = sortedGroups(groups).map(({ group, counts }) => [
      group,
      counts.devices,
      counts.faultyDevices,
      counts.exposureHours,
      counts.faults,
    ]);
    expect(byIsp).toEqual([
      [{ isp: "1und1" }, 2, 2, 20, { info: 0, warning: 0, error: 2, critical: 1 }],
      [{ isp: "telekom" }, 1, 1, 10, { info: 5, warning: 0, error: 0, critical: 0 }],
      [{ isp: "unknown" }, 0, 1, 0, { info: 0, warning: 1, error: 0, critical: 0 }],
    ]);
    expect(total).toMatchObject({
      devices: 3,
      faultyDevices: 4,
      exposureHours: 30,
      reboots: 1,
      rejections: 3,
    });
    expect(total.ratings[9]).toBe(1);
  });

  test("filters by hardware, an unknown one included, and groups by cohort tags beside it", () => {
    const { groups, total } = deviceSumsBy(rows, attributesOf, { hardware: "rev-b" }, ["firmware"]);
    expect(
      sortedGroups(groups).map(({ group, counts }) => [group, counts.devices, counts.exposureHours]),
    ).toEqual([
      [{ firmware: "1.0" }, 1, 4],
      [{ firmware: "1.1" }, 1, 6],
    ]);
    expect(total.devices).toBe(1);
    const unknown = deviceSumsBy(rows, attributesOf, { hardware: "unknown" }, []);
    expect(unknown.total).toMatchObject({ devices: 1, faultyDevices: 2, exposureHours: 10 });
  });
});
