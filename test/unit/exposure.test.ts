import { describe, expect, it } from "vitest";
import { HOUR_MS } from "../../contract/time.js";
import type { JournalRecord } from "../../ingest/journal.js";
import { activityPoint, exposureHours } from "../../ingest/to-points.js";
import { encodePoint } from "../../storage/line-protocol.js";
import { pointTimeNs } from "../../storage/schema.js";

const tags = {
  device: "modem-0001",
  kind: "modem",
  model: "FQ-Modem 7590",
  firmware: "2.3.1",
  region: "eu-west",
};
const H = Date.UTC(2026, 10, 23, 10);
const record = (measurement: string, ms: number, firmware = "2.3.1"): JournalRecord => ({
  point: {
    measurement,
    rp: "raw",
    tags: { ...tags, firmware },
    fields: { x: 1 },
    timeNs: pointTimeNs(ms, 7),
  },
});

describe("exposureHours", () => {
  it("credits each UTC hour a device reported in once, whatever the number of samples", () => {
    const hours = exposureHours([
      record("telemetry", H + 1),
      record("telemetry", H + 59 * 60_000),
      record("telemetry", H + HOUR_MS + 5),
      record("fault", H + 2 * HOUR_MS),
    ]);
    expect(hours.map((h) => h.hourMs)).toEqual([H, H + HOUR_MS, H + 2 * HOUR_MS]);
  });

  it("credits an hour in which the firmware changed to both versions", () => {
    const hours = exposureHours([record("telemetry", H + 1, "2.3.1"), record("event", H + 2, "2.4.0")]);
    expect(hours.map((h) => h.tags.firmware)).toEqual(["2.3.1", "2.4.0"]);
  });

  it.each(["device", "presence", "rejection"])("does not count %s points as reporting", (measurement) => {
    expect(exposureHours([record(measurement, H)])).toEqual([]);
  });
});

describe("activityPoint", () => {
  it("is one point at the start of the hour with the device id repeated as a field", () => {
    expect(encodePoint(activityPoint(tags, H))).toBe(
      `activity,device=modem-0001,firmware=2.3.1,kind=modem,model=FQ-Modem\\ 7590,region=eu-west hours=1i,device_id="modem-0001" ${BigInt(H) * 1_000_000n}`,
    );
  });
});
