import { describe, expect, it } from "vitest";
import { deviceStateRow, eventRow, faultRow, flatJson, lastMetrics } from "../../storage/device-queries.js";
import { faultPageStatement, narrowerStarts } from "../../storage/fault-queries.js";

const T = Date.parse("2025-03-01T12:00:00.000Z");
const row = (fields: Record<string, unknown>, ms = T) => ({ time: new Date(ms), ...fields });

describe("flatJson", () => {
  it.each([
    ['{"snr":3.5,"line":"a","up":true}', { snr: 3.5, line: "a", up: true }],
    ['{"nested":{"a":1},"n":1}', { n: 1 }],
    ["[1,2]", {}],
    ["not json", {}],
    [42, {}],
    [null, {}],
  ])("reads %j as %j", (stored, expected) => {
    expect(flatJson(stored)).toEqual(expected);
  });
});

describe("eventRow", () => {
  it("keeps an event's own fields as data, without tags and bookkeeping", () => {
    const stored = row({
      device: "m-1",
      kind: "modem",
      model: "M1",
      firmware: "1.0",
      region: "eu",
      type: "feedback",
      rating: 4,
      comment: "fine",
      seq: 7,
      received_ms: T + 2000,
      skew_ms: 2000,
      missing: null,
    });
    expect(eventRow(stored)).toEqual({
      type: "feedback",
      deviceMs: T,
      receivedMs: T + 2000,
      data: { rating: 4, comment: "fine" },
    });
  });

  it("gives an unknown type's data back as the object it was sent as", () => {
    const stored = row({ type: "door_open", data: '{"door":"front","open":true,"count":3}', received_ms: T });
    expect(eventRow(stored).data).toEqual({ door: "front", open: true, count: 3 });
  });

  it("shows the device's claimed time for a point stored at receive time", () => {
    const claimed = T - 70 * 86_400_000;
    const stored = row({
      type: "reboot",
      reason: "x",
      clock_skewed: true,
      device_ts: claimed,
      received_ms: T,
    });
    expect(eventRow(stored)).toMatchObject({ deviceMs: claimed, receivedMs: T, data: { reason: "x" } });
  });
});

describe("faultRow", () => {
  it("maps a stored fault, parsing its context", () => {
    const stored = row({
      device: "m-1",
      kind: "modem",
      model: "M1",
      firmware: "1.0",
      region: "eu",
      code: "LOS",
      severity: "critical",
      component: null,
      message: "loss",
      context: '{"snr":1}',
      received_ms: T + 500,
      clock_skewed: null,
      device_ts: null,
    });
    expect(faultRow(stored)).toEqual({
      device: "m-1",
      kind: "modem",
      model: "M1",
      firmware: "1.0",
      region: "eu",
      code: "LOS",
      severity: "critical",
      component: null,
      message: "loss",
      context: { snr: 1 },
      deviceMs: T,
      receivedMs: T + 500,
    });
  });
});

describe("deviceStateRow", () => {
  it("maps every field and leaves out nothing it was given", () => {
    const stored = row(
      {
        device: "m-1",
        kind: "modem",
        model: "M1",
        firmware: "1.0",
        hardware: "a",
        serial: "S",
        region: "eu",
        isp: "i",
        first_ms: 1,
        last_report_ms: 2,
        last_report_device_ms: 1.5,
        last_seen_ms: 3,
        presence: "offline",
        presence_ms: 4,
        presence_source: "will",
        gap_median_ms: 5.5,
        gap_samples: 6,
        updated_ms: 7,
        update_ms: 8,
        update_device_ms: 7.5,
        update_from: "0.9",
        update_to: "1.0",
      },
      0,
    );
    expect(deviceStateRow(stored)).toEqual({
      device: "m-1",
      kind: "modem",
      model: "M1",
      firmware: "1.0",
      hardware: "a",
      serial: "S",
      region: "eu",
      isp: "i",
      firstMs: 1,
      lastReportMs: 2,
      lastReportDeviceMs: 1.5,
      lastSeenMs: 3,
      presence: "offline",
      presenceMs: 4,
      presenceSource: "will",
      gapMedianMs: 5.5,
      gapSamples: 6,
      updatedMs: 7,
      lastUpdate: { atMs: 8, deviceMs: 7.5, from: "0.9", to: "1.0" },
    });
  });

  it("drops a row without a device and reads absent fields as null", () => {
    expect(deviceStateRow(row({ model: "M1" }))).toBeUndefined();
    expect(deviceStateRow(row({ device: "x", presence: "maybe" }))).toMatchObject({
      kind: null,
      presence: null,
      lastReportMs: null,
      lastReportDeviceMs: null,
    });
  });

  it("reads a point written before device times were kept: an update without one", () => {
    expect(
      deviceStateRow(row({ device: "x", last_report_ms: 2, update_ms: 8, update_to: "1.0" })),
    ).toMatchObject({
      lastReportMs: 2,
      lastReportDeviceMs: null,
      lastUpdate: { atMs: 8, deviceMs: null, from: null, to: "1.0" },
    });
  });
});

describe("lastMetrics", () => {
  it("names each metric without last_ and leaves out bookkeeping", () => {
    expect(lastMetrics(row({ last_snr_db: 4, last_link_up: 1, last_seq: 9, last_received_ms: T }))).toEqual({
      snr_db: 4,
      link_up: 1,
    });
    expect(lastMetrics(undefined)).toEqual({});
  });
});

describe("faultPageStatement", () => {
  const page = { fromMs: 1000, toMs: 2000, limit: 10, offset: 20, rows: 11 };

  it("reads fault_list when no device is named", () => {
    const q = faultPageStatement({ ...page, model: "M1", code: "LOS" });
    expect(q).toContain(
      `FROM "long"."fault_list" WHERE time >= 1000ms AND time < 2000ms AND "model" = 'M1' AND "code" = 'LOS'`,
    );
    expect(q).toMatch(/ORDER BY time DESC LIMIT 11 OFFSET 20$/);
  });

  it("reads the device's own fault series when a device is named", () => {
    const q = faultPageStatement({ ...page, device: "m-1", severity: "critical" });
    expect(q).toContain(`FROM "long"."fault" WHERE "device"::tag = 'm-1' AND time >= 1000ms`);
    expect(q).toContain(`"severity" = 'critical'`);
  });

  it("escapes quotes in a value", () => {
    expect(faultPageStatement({ ...page, code: "it's" })).toContain(`"code" = 'it\\'s'`);
  });
});

describe("narrowerStarts", () => {
  const DAY = 86_400_000;
  it.each([
    ["a month", 30 * DAY, [29 * DAY, 23 * DAY, 0]],
    ["three days", 3 * DAY, [2 * DAY, 0]],
    ["exactly a week", 7 * DAY, [6 * DAY, 0]],
    ["an hour", DAY / 24, [0]],
  ])("tries the newest day and week of %s before the whole window", (_name, span, starts) => {
    expect(narrowerStarts({ fromMs: 0, toMs: span })).toEqual(starts);
  });
});
