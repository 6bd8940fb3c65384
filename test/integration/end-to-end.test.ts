import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { runSim } from "../../device-sim/run-sim.js";
import { plainPlan } from "../../device-sim/schedule.js";
import { silentLogger } from "../../observe/logger.js";
import { startFieldq } from "../../stack/start-stack.js";
import { testDatabase } from "../support/influx.js";
import { TEST_SECRET, testConfig } from "../support/stack.js";

test("simulated devices' faults come out of the API as faults, issues, fleet health and device summaries", async () => {
  const db = await testDatabase("e2e");
  const dataDir = await mkdtemp(join(tmpdir(), "fieldq-e2e-"));
  const config = testConfig(db, dataDir);
  const stack = await startFieldq(config, { logger: silentLogger }, { broker: true, api: true });
  // Ten-minute ticks at 3000×, one every 200 ms, over the two days up to now; no offline spells, so all
  // eight stay connected.
  const now = Date.now();
  const plan = plainPlan({
    devices: 8,
    seed: 7,
    startMs: now - 2 * 86_400_000,
    endMs: now,
    cadenceMs: 600_000,
  });
  const sim = await runSim({
    brokerUrl: `mqtt://127.0.0.1:${stack.mqttPort}`,
    secret: TEST_SECRET,
    plan: { ...plan, deviceOptions: { offlineSpellsPerWeek: 0 } },
    seed: 7,
    speed: 3000,
    logger: silentLogger,
  });
  const get = async (path: string) => {
    const response = await fetch(`${stack.apiUrl}${path}`, {
      headers: { authorization: "Bearer viewer-token-1" },
    });
    expect(response.status).toBe(200);
    return (await response.json()) as { items: Array<Record<string, unknown>>; total?: number };
  };
  try {
    let faults = await get("/api/v1/faults");
    for (let i = 0; i < 100 && faults.items.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 200));
      faults = await get("/api/v1/faults");
    }
    expect(faults.items.length).toBeGreaterThan(0);
    expect(faults.items[0]).toMatchObject({
      device: expect.stringMatching(/^(modem|printer)-\d{4}$/),
      model: expect.stringMatching(/^FQ-/),
    });
    // The device list follows device_state through the API's directory, refreshed every few seconds.
    await expect
      .poll(async () => (await get("/api/v1/devices")).total, { timeout: 20_000, interval: 200 })
      .toBe(8);
    const health = await fetch(`${stack.apiUrl}/api/v1/health`).then((r) => r.json());
    expect(health).toMatchObject({ status: "ok", connectedDevices: 8 });
    // Issues and fleet health read the rollups, which follow the raw points by FIELDQ_ROLLUP_INTERVAL.
    const faultCodes = new Set(faults.items.map((f) => `${f.kind}/${f.model}/${f.code}`));
    await expect
      .poll(
        async () =>
          (await get("/api/v1/issues")).items.map((i) => i.key).filter((key) => faultCodes.has(String(key)))
            .length,
        { timeout: 20_000, interval: 200 },
      )
      .toBeGreaterThan(0);
    type Summary = { total: { devices: number; exposureHours: number } };
    const summaryPath = "/api/v1/fleet/summary?groupBy=kind";
    await expect
      .poll(async () => ((await get(summaryPath)) as unknown as Summary).total.devices, {
        timeout: 20_000,
        interval: 200,
      })
      .toBe(8);
    const summary = (await get(summaryPath)) as unknown as Summary;
    expect(summary.total.exposureHours).toBeGreaterThanOrEqual(8);
    const device = (await get(`/api/v1/devices/${faults.items[0]?.device}/summary`)) as unknown as {
      status: string;
      issues: { available: boolean };
    };
    expect(device).toMatchObject({ status: "online", issues: { available: true } });
  } finally {
    await sim.stop();
    await stack.close();
    await db.drop();
    await rm(dataDir, { recursive: true, force: true });
  }
});
