import { expect, test } from "vitest";
import { createInflux, ensureSchema } from "../../storage/influx.js";
import { testDatabase } from "../support/influx.js";

test("creates the database, both retention policies and the rollups, and can run again on a live database", async () => {
  const db = await testDatabase("schema");
  const influx = createInflux(db);
  try {
    await ensureSchema(influx, db);
    await ensureSchema(influx, { ...db, rawRetention: "14d" });
    const policies = await influx.showRetentionPolicies(db.database);
    // autogen comes with CREATE DATABASE; nothing writes to it.
    expect(policies.map((p) => [p.name, p.duration, p.default]).sort()).toEqual([
      ["autogen", "0s", false],
      ["long", "0s", false],
      ["raw", "336h0m0s", true],
    ]);
    const queries = await influx.showContinousQueries(db.database);
    expect(queries.map((q) => q.name).sort()).toEqual(["cq_telemetry_1h"]);
  } finally {
    await db.drop();
  }
});
