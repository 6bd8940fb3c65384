import { describe, expect, it } from "vitest";
import type { FleetSummary, HealthMetrics } from "../../contract/api/fleet.js";
import type { IssueListItem } from "../../contract/api/issues.js";
import { changes, paretoChart, TOP_ISSUES } from "../../dashboard/pages/overview-parts.js";

// The overview's judgements: what counts as "worse since yesterday", and the Pareto's bars and cumulative share.

function metrics(
  faults: number,
  hours: number,
  free: number | null,
  rating: number | null,
  ratings = 10,
): HealthMetrics {
  const per = (n: number) => ({ count: n, per1000h: hours > 0 ? (n / hours) * 1000 : null });
  return {
    devices: 10,
    exposureHours: hours,
    faults: {
      ...per(faults),
      bySeverity: { info: per(0), warning: per(faults), error: per(0), critical: per(0) },
    },
    faultyDevices: 0,
    faultFreeShare: free,
    reboots: { count: 0, perDeviceDay: 0 },
    rejections: per(0),
    feedback: { count: ratings, mean: rating, distribution: Array(11).fill(0) },
  };
}

function summary(total: HealthMetrics, models: Record<string, HealthMetrics>): FleetSummary {
  return {
    from: "2025-03-01T00:00:00.000Z",
    to: "2025-03-02T00:00:00.000Z",
    groupBy: ["model"],
    filter: {},
    groups: Object.entries(models).map(([model, m]) => ({ ...m, group: { model } })),
    total,
  };
}

describe("changes since yesterday", () => {
  it("names a model whose fault rate rose by more than a tenth, and nothing that held steady", () => {
    const before = summary(metrics(20, 1000, 0.5, 7), {
      A: metrics(10, 500, 0.5, 7),
      B: metrics(10, 500, 0.5, 7),
    });
    const last = summary(metrics(26, 1000, 0.5, 7), {
      A: metrics(16, 500, 0.5, 7),
      B: metrics(10, 500, 0.5, 7),
    });
    const rows = changes(last, before);
    expect(rows.map((r) => [r.scope, r.measure])).toEqual([
      ["Whole fleet", "Faults per 1,000 device-hours"],
      ["A", "Faults per 1,000 device-hours"],
    ]);
    expect(rows[1]).toMatchObject({ before: "20", after: "32", change: "+60%" });
  });

  it("ignores a rise on a handful of faults, and reports a fallen fault-free share and rating", () => {
    const before = summary(metrics(1, 1000, 0.9, 8), {});
    const last = summary(metrics(4, 1000, 0.8, 7), {});
    expect(changes(last, before).map((r) => r.measure)).toEqual(["Fault-free devices", "Mean rating (0–10)"]);
  });
});

describe("top issues Pareto", () => {
  const issue = (i: number, occurrences: number) =>
    ({ id: `id${i}`, codes: [`CODE_${i}`], model: "M1", occurrences }) as IssueListItem;

  it("keeps the top issues as bars and sums the rest into one bar", () => {
    const issues = Array.from({ length: TOP_ISSUES + 3 }, (_, i) => issue(i, 100 - i));
    const chart = paretoChart(issues, issues.length);
    if (chart.spec.kind !== "pareto") throw new Error("not a pareto");
    expect(chart.spec.labels).toHaveLength(TOP_ISSUES + 1);
    expect(chart.spec.labels[0]).toBe("CODE_0 · M1");
    expect(chart.spec.labels.at(-1)).toBe("3 other issues");
    expect(chart.spec.values.at(-1)).toBe(100 - TOP_ISSUES + (100 - TOP_ISSUES - 1) + (100 - TOP_ISSUES - 2));
    expect(chart.spec.values.reduce((a, v) => a + v, 0)).toBe(issues.reduce((a, i) => a + i.occurrences, 0));
  });

  it("says how many bars give 80% of the occurrences", () => {
    const chart = paretoChart([issue(0, 70), issue(1, 20), issue(2, 10)], 3);
    expect(chart.summary).toContain("the top 2 of 3 bars give 80%");
  });
});
