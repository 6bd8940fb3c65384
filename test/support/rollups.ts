import type { InfluxDB } from "influx";
import { createRollups, type Rollups } from "../../rollup/rollups.js";
import type { PointWriter } from "../../storage/influx.js";
import { dirtyHoursOf } from "../../storage/rollup-schema.js";

/**
 * A writer that recomputes the rollups of the hours it wrote to before it returns, as the ingest's rollup
 * runner does a moment later: tests that write raw points read the analytics at once.
 */
export function rollingUp(influx: InfluxDB, write: PointWriter): PointWriter & { rollups: Rollups } {
  const rollups = createRollups(influx, write);
  const writer = async (points: Parameters<PointWriter>[0]) => {
    await write(points);
    const hours = dirtyHoursOf(points);
    if (hours.size > 0) await rollups.recompute(hours);
  };
  return Object.assign(writer, { rollups });
}
