import { loadScenario } from "../device-sim/scenario/parse.js";
import { planScenario } from "../device-sim/scenario/plan.js";
import { collectAnswers, type Score, scoreRun } from "../device-sim/score.js";
import { memoryScoreApi } from "./detect-answers.js";
import { statisticalLimit } from "./detect-limit.js";
import { playInMemory } from "./detect-sim.js";

/** The moment every run is planned from, so that a seed gives the same run on every machine and day. */
export const BENCH_NOW_MS = Date.UTC(2026, 0, 5);

export type DetectRun = {
  scenario: string;
  seed: number;
  devices: number;
  messages: number;
  elapsedMs: number;
  score: Score;
  /** Per problem id: the statistical limit of its time to detect (bench/detect-limit.ts), null if none. */
  limitsMs: Record<string, number | null>;
};

/**
 * One scenario and seed, backfilled: its history ends at BENCH_NOW_MS and starts at the scenario's start or
 * earlier (as `fieldq sim --mode backfill` places it), played in memory and scored.
 */
export async function detectRun(name: string, seed: number): Promise<DetectRun> {
  const started = performance.now();
  const loaded = await loadScenario(name);
  if (!loaded.ok) throw new Error(loaded.errors.map((e) => e.text).join("\n"));
  const scenario = loaded.scenario;
  const planned = scenario.start.from === "now" ? BENCH_NOW_MS + scenario.start.offsetMs : scenario.start.ms;
  const startMs = Math.min(planned, BENCH_NOW_MS - scenario.duration);
  const plan = planScenario(
    { ...scenario, start: { from: "fixed", ms: startMs } },
    { seed, nowMs: BENCH_NOW_MS },
  );
  const run = playInMemory(plan, seed);
  // Scored as `sim score` scores a backfill right after it: at the end of its history.
  const api = memoryScoreApi(run, plan.truth.endMs);
  const answers = await collectAnswers(plan.truth, api, { nowMs: plan.truth.endMs });
  const score = scoreRun(plan.truth, answers);
  const limitsMs = Object.fromEntries(plan.truth.problems.map((p) => [p.id, statisticalLimit(run, p)]));
  return {
    scenario: name,
    seed,
    devices: plan.devices.length,
    messages: run.messages,
    elapsedMs: performance.now() - started,
    score,
    limitsMs,
  };
}
