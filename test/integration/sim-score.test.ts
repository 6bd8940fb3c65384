import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { runBackfill } from "../../device-sim/backfill.js";
import { parseScenario } from "../../device-sim/scenario/parse.js";
import { planScenario } from "../../device-sim/scenario/plan.js";
import type { Score } from "../../device-sim/score.js";
import { scoreCommand } from "../../device-sim/score-command.js";
import { silentLogger } from "../../observe/logger.js";
import { startFieldq, startIngestBroker } from "../../stack/start-stack.js";
import { testDatabase } from "../support/influx.js";
import { TEST_SECRET, testConfig } from "../support/stack.js";

// scenarios/firmware-regression.yaml made smaller: 50 modems over three days instead of 500 over a week, a
// report every 30 minutes. It keeps what the scoring is about: a staged rollout (5% → 25% → 100%) of a
// firmware that makes one fault code four times as frequent, next to a model that gets no update.
const SCENARIO = `
name: firmware-regression-small
seed: 240
start: -3d
duration: 3d
cadence: 30m
fleet:
  - kind: modem
    model: FQ-Modem 7590
    count: 40
    firmware: { "7.57": 100 }
  - kind: modem
    model: FQ-Modem 5530
    count: 10
    firmware: "8.02"
rollouts:
  - model: FQ-Modem 7590
    firmware: "7.62"
    spread: 2h
    stages:
      - { at: 12h, percent: 5 }
      - { at: 1d, percent: 25 }
      - { at: 36h, percent: 100 }
problems:
  - id: wan-down-7.62
    type: fault_rate
    model: FQ-Modem 7590
    firmware: "7.62"
    code: WAN_DOWN
    factor: 4
`;

test("a backfilled staged rollout's injected regression is found by sim score through the real stack", async () => {
  const parsed = parseScenario(SCENARIO, "firmware-regression-small.yaml");
  if (!parsed.ok) throw new Error(parsed.errors.map((e) => e.text).join("\n"));
  const plan = planScenario(parsed.scenario, { nowMs: Date.now() });

  const db = await testDatabase("sim_score");
  const dir = await mkdtemp(join(tmpdir(), "fieldq-sim-score-"));
  const config = testConfig(db, join(dir, "data"));
  // Broker, ingest and rollup runner in one handle, so the test can see the journal drain and the rollups
  // catch up; the API on its own, reading the same InfluxDB, as `fieldq api` does.
  const ingest = await startIngestBroker(config, { logger: silentLogger });
  const api = await startFieldq(config, { logger: silentLogger }, { broker: false, api: true });
  try {
    const stats = await runBackfill({
      brokerUrl: `mqtt://127.0.0.1:${ingest.mqttPort}`,
      secret: TEST_SECRET,
      plan,
      seed: plan.truth.seed,
      logger: silentLogger,
    });
    expect(stats).toMatchObject({ devices: 50, flushed: 50, failed: 0 });
    await expect
      .poll(() => ingest.journal.backlog.entries + ingest.journal.dirty().size, {
        timeout: 30_000,
        interval: 100,
      })
      .toBe(0);
    // Every hour is rolled up now. A regression pass that starts after this scans the whole history; one
    // that ran while the devices were still flushing (each at its own point of its history) saw only part.
    await ingest.regressions.poke();

    const truthPath = join(dir, "truth.json");
    await writeFile(truthPath, JSON.stringify(plan.truth));
    const out: string[] = [];
    const err: string[] = [];
    const status = await scoreCommand(
      [truthPath, "--json", "--api", String(api.apiUrl)],
      { FIELDQ_API_TOKEN: "viewer-token-1" },
      { out: (line) => out.push(line), err: (line) => err.push(line) },
    );
    expect(err).toEqual([]);
    expect(status).toBe(0);
    const score = JSON.parse(out.join("\n")) as Score;

    const injected = plan.truth.problems.find((p) => p.id === "wan-down-7.62");
    expect(injected).toMatchObject({ type: "fault_rate", baseline: "7.57", firmware: "7.62" });
    const problem = score.problems.find((p) => p.id === "wan-down-7.62");
    expect(problem).toMatchObject({
      status: "found",
      detail: {
        verdicts: expect.arrayContaining([
          expect.objectContaining({ baseline: "7.57", verdict: "regression" }),
        ]),
        codeNamed: true,
        issue: { key: "modem/FQ-Modem 7590/WAN_DOWN" },
      },
    });
    expect(problem?.timeToDetectMs).toBeGreaterThan(0);
    expect(Date.parse(problem?.detectedAt ?? "")).toBeGreaterThan(injected?.onsetMs ?? Number.NaN);
    expect(Date.parse(problem?.detectedAt ?? "")).toBeLessThanOrEqual(plan.truth.endMs + 3_600_000);
    expect(score.recall).toBe(1);
    // 7.62 is the only firmware change in the run, no ISP is flaky and nothing sends malformed payloads.
    expect(score.alarms).toEqual([
      expect.objectContaining({ signal: "regression", subject: "FQ-Modem 7590 7.62", injected: true }),
    ]);
    expect(score.precision).toBe(1);
  } finally {
    await api.close();
    await ingest.close();
    await db.drop();
    await rm(dir, { recursive: true, force: true });
  }
}, 90_000);
