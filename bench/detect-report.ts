import { formatDuration } from "../contract/time.js";
import type { DetectRun } from "./detect-run.js";

// bench:detect's figures: per scenario, pooled over its seeds, and the table they are printed as.

/** The nearest-rank quantile of the values; null without any. */
export function quantile(values: readonly number[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? null;
}

type ProblemSummary = {
  id: string;
  type: string;
  runs: number;
  found: number;
  scored: number;
  ttd: { median: number | null; p90: number | null };
  limit: { median: number | null; p90: number | null };
};

type ScenarioSummary = {
  scenario: string;
  runs: number;
  devices: number;
  messages: number;
  alarms: number;
  falseAlarms: number;
  precision: number | null;
  recall: number | null;
  ttd: { median: number | null; p90: number | null };
  limit: { median: number | null; p90: number | null };
  problems: ProblemSummary[];
  falseAlarmSubjects: Record<string, number>;
};

const spread = (values: number[]) => ({ median: quantile(values, 0.5), p90: quantile(values, 0.9) });

export function summarize(scenario: string, runs: readonly DetectRun[]): ScenarioSummary {
  const alarms = runs.flatMap((r) => r.score.alarms);
  const problems = runs.flatMap((r) => r.score.problems);
  const found = problems.filter((p) => p.status === "found").length;
  const scored = problems.filter((p) => p.status !== "not_scored").length;
  const limits = (id?: string) =>
    runs.flatMap((r) =>
      Object.entries(r.limitsMs).flatMap(([pid, ms]) =>
        ms !== null && (id === undefined || pid === id) ? [ms] : [],
      ),
    );
  const ttds = (list: typeof problems) =>
    list.flatMap((p) => (p.timeToDetectMs === null ? [] : [p.timeToDetectMs]));
  const ids = [...new Set(problems.map((p) => p.id))];
  const falseAlarmSubjects: Record<string, number> = {};
  for (const a of alarms) {
    if (!a.injected)
      falseAlarmSubjects[`${a.signal} ${a.subject}`] =
        (falseAlarmSubjects[`${a.signal} ${a.subject}`] ?? 0) + 1;
  }
  return {
    scenario,
    runs: runs.length,
    devices: runs[0]?.devices ?? 0,
    messages: Math.round(runs.reduce((n, r) => n + r.messages, 0) / Math.max(1, runs.length)),
    alarms: alarms.length,
    falseAlarms: alarms.filter((a) => !a.injected).length,
    precision: alarms.length === 0 ? null : alarms.filter((a) => a.injected).length / alarms.length,
    recall: scored === 0 ? null : found / scored,
    ttd: spread(ttds(problems)),
    limit: spread(limits()),
    problems: ids.map((id) => {
      const mine = problems.filter((p) => p.id === id);
      return {
        id,
        type: mine[0]?.type ?? "",
        runs: mine.length,
        found: mine.filter((p) => p.status === "found").length,
        scored: mine.filter((p) => p.status !== "not_scored").length,
        ttd: spread(ttds(mine)),
        limit: spread(limits(id)),
      };
    }),
    falseAlarmSubjects,
  };
}

export const share = (n: number | null) => (n === null ? "–" : n.toFixed(2));
const duration = (ms: number | null) => (ms === null ? "–" : formatDuration(ms));

function table(rows: string[][]): string[] {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows.map((r) =>
    r
      .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd(),
  );
}

export function formatSummaries(summaries: readonly ScenarioSummary[]): string[] {
  const rows: string[][] = [
    [
      "scenario / problem",
      "runs",
      "precision",
      "recall",
      "TTD median",
      "TTD p90",
      "limit median",
      "limit p90",
    ],
  ];
  for (const s of summaries) {
    rows.push([
      s.scenario,
      String(s.runs),
      `${share(s.precision)} (${s.alarms - s.falseAlarms}/${s.alarms})`,
      share(s.recall),
      duration(s.ttd.median),
      duration(s.ttd.p90),
      duration(s.limit.median),
      duration(s.limit.p90),
    ]);
    for (const p of s.problems) {
      rows.push([
        `  ${p.id} (${p.type})`,
        String(p.runs),
        "",
        p.scored === 0 ? "not scored" : `${p.found}/${p.scored} found`,
        duration(p.ttd.median),
        duration(p.ttd.p90),
        duration(p.limit.median),
        duration(p.limit.p90),
      ]);
    }
  }
  const lines = table(rows);
  const falseAlarms = summaries.flatMap((s) =>
    Object.entries(s.falseAlarmSubjects).map(
      ([subject, n]) => `  ${s.scenario}: ${subject} (${n} of ${s.runs} runs)`,
    ),
  );
  if (falseAlarms.length > 0) lines.push("", "False alarms:", ...falseAlarms);
  return lines;
}
