import { randomBytes } from "node:crypto";
import type { InfluxConfig } from "../../config/env.js";

/** The InfluxDB the suite talks to; scripts/test.sh starts a private one and sets this. */
export function testInfluxUrl(): string {
  const url = process.env.FIELDQ_TEST_INFLUX_URL;
  if (!url)
    throw new Error(
      "FIELDQ_TEST_INFLUX_URL is not set: run the suite with `npm test`, which starts InfluxDB",
    );
  return url;
}

async function influxQuery(url: string, q: string): Promise<void> {
  const response = await fetch(`${url}/query`, { method: "POST", body: new URLSearchParams({ q }) });
  if (!response.ok) throw new Error(`${q}: HTTP ${response.status} ${await response.text()}`);
}

/** A database of the test's own, dropped when the returned drop() is called. */
export async function testDatabase(label: string): Promise<InfluxConfig & { drop(): Promise<void> }> {
  const url = testInfluxUrl();
  const database = `test_${label.replace(/\W/g, "_")}_${randomBytes(4).toString("hex")}`;
  await influxQuery(url, `DROP DATABASE "${database}"`);
  return { url, database, rawRetention: "30d", drop: () => influxQuery(url, `DROP DATABASE "${database}"`) };
}
