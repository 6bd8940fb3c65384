import type { InfluxDB } from "influx";
import { type SettleOptions, type SettleResult, settleIssues } from "../../rollup/settle-issues.js";
import type { PointWriter } from "../../storage/influx.js";
import { rollingUp } from "./rollups.js";

/**
 * A writer that, before it returns, recomputes the rollups of the hours it wrote to and then settles the
 * issues, as the ingest's rollup and settle runners do a moment later. The issue service's own event
 * writes go through it too, as a runner would pass right after a person's change. `settle()` runs a pass
 * on its own, e.g. after moving the test's clock.
 */
export function settling(
  influx: InfluxDB,
  write: PointWriter,
  options: Omit<SettleOptions, "influx" | "write">,
): PointWriter & { settle(): Promise<SettleResult> } {
  const rolled = rollingUp(influx, write);
  const settle = () => settleIssues({ ...options, influx, write });
  const writer = async (points: Parameters<PointWriter>[0]) => {
    await rolled(points);
    await settle();
  };
  return Object.assign(writer, { settle });
}
