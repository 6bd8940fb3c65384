import { describe, expect, it } from "vitest";
import { fingerprintId } from "../../analytics/fingerprint.js";
import { type DecodedMessage, decodeMessage } from "../../ingest/decode.js";
import type { DeviceMetaRecord } from "../../ingest/journal.js";
import {
  deviceTagsOf,
  messagePoints,
  type PointContext,
  presencePoint,
  rejectionPoint,
  unknownMeta,
} from "../../ingest/to-points.js";
import { encodePoint } from "../../storage/line-protocol.js";
import { type Point, pointTimeNs } from "../../storage/schema.js";

const R = 1_736_150_400_000; // receive time, 2025-01-06T08:00:00Z
const MINUTE = 60_000;
const DAY = 86_400_000;
const ID = "modem-0001";

const META: DeviceMetaRecord = {
  kind: "modem",
  model: "FQ-M200",
  firmware: "2.4.1",
  hardware: "rev C",
  region: "eu-west",
  isp: "Example Telecom",
  serial: "S-1",
};
const TAGS = "device=modem-0001,firmware=2.4.1,kind=modem,model=FQ-M200,region=eu-west";

const ctx = (overrides: Partial<PointContext> = {}): PointContext => ({
  meta: META,
  receivedMs: R,
  clockSkewFutureMs: 10 * MINUTE,
  clockSkewPastMs: 60 * DAY,
  discriminator: 7,
  ...overrides,
});

function message(channel: string, body: unknown): DecodedMessage {
  const decoded = decodeMessage(`fq/v1/${ID}/${channel}`, Buffer.from(JSON.stringify(body)), 65536);
  if (!decoded.ok) throw new Error(`test message refused: ${decoded.refusal.message}`);
  return decoded.message;
}

function onlyPoint(channel: string, body: unknown, context = ctx()): Point {
  const { records } = messagePoints(message(channel, body), context);
  expect(records).toHaveLength(1);
  return (records[0] as { point: Point }).point;
}

const stampFields = (seq: number, skewMs = 0) => ({
  seq: { int: seq },
  received_ms: { int: R },
  skew_ms: { int: skewMs },
});

describe("messagePoints for a hello", () => {
  const hello = { kind: "modem", model: "FQ-M200", firmware: "2.4.1", hardware: "rev C", serial: "S-1" };

  it("writes a device point at receive time with hardware and isp tags", () => {
    const { records, skewed } = messagePoints(message("hello", hello), ctx({ meta: undefined }));
    expect(skewed).toBe(0);
    expect(records).toHaveLength(1);
    const [record] = records;
    expect(record?.dedupe).toBeUndefined();
    expect(record?.point.rp).toBe("long");
    expect(encodePoint(record?.point as Point)).toBe(
      'device,device=modem-0001,firmware=2.4.1,hardware=rev\\ C,isp=unknown,kind=modem,model=FQ-M200,region=unknown serial="S-1",received_ms=1736150400000i 1736150400000000007',
    );
  });

  it("returns the device's new metadata, unknown where the hello does not say", () => {
    expect(messagePoints(message("hello", hello), ctx({ meta: undefined })).meta).toEqual({
      ...hello,
      region: "unknown",
      isp: "unknown",
    });
    const full = { ...hello, region: "eu-west", isp: "Example Telecom" };
    expect(messagePoints(message("hello", full), ctx()).meta).toEqual(full);
  });

  it("tags its point with the hello's metadata, not the previous one", () => {
    const point = onlyPoint("hello", { ...hello, firmware: "3.0.0" });
    expect(point.tags.firmware).toBe("3.0.0");
  });
});

describe("messagePoints for telemetry", () => {
  const sample = { ts: R - 1000, seq: 42, metrics: { snr: 7.5, up: true } };

  it("writes one field per metric beside seq, received_ms and skew_ms, at the device's time", () => {
    const { records, skewed } = messagePoints(message("telemetry", sample), ctx());
    expect(skewed).toBe(0);
    expect(records).toHaveLength(1);
    expect(records[0]?.point.rp).toBe("raw");
    expect(records[0]?.point.timeNs).toBe(pointTimeNs(R - 1000, 42));
    expect(encodePoint(records[0]?.point as Point)).toBe(
      `telemetry,${TAGS} snr=7.5,up=1,seq=42i,received_ms=1736150400000i,skew_ms=1000i 1736150399000000042`,
    );
  });

  it("tags points of a device without a hello as unknown", () => {
    const point = onlyPoint("telemetry", sample, ctx({ meta: undefined }));
    expect(point.tags).toEqual({
      device: ID,
      kind: "unknown",
      model: "unknown",
      firmware: "unknown",
      region: "unknown",
    });
  });

  it("does not tag telemetry with hardware or isp", () => {
    expect(Object.keys(onlyPoint("telemetry", sample).tags).sort()).toEqual([
      "device",
      "firmware",
      "kind",
      "model",
      "region",
    ]);
  });

  it("writes each sample of an array as its own point, in order", () => {
    const samples = [0, 1, 2].map((i) => ({ ts: R - 3000 + i * 1000, seq: 100 + i, metrics: { snr: i } }));
    const { records } = messagePoints(message("telemetry", samples), ctx());
    expect(records.map((r) => r.point.timeNs)).toEqual(samples.map((s) => pointTimeNs(s.ts, s.seq)));
    expect(records.map((r) => r.point.fields.snr)).toEqual([0, 1, 2]);
  });

  it.each([
    ["at the future limit", R + 10 * MINUTE],
    ["at the past limit", R - 60 * DAY],
    ["at receive time", R],
  ])("trusts a device time %s", (_case, ts) => {
    const { records, skewed } = messagePoints(message("telemetry", { ...sample, ts }), ctx());
    expect(skewed).toBe(0);
    expect(records[0]?.point.timeNs).toBe(pointTimeNs(ts, 42));
    expect(records[0]?.point.fields).toEqual({ snr: 7.5, up: 1, ...stampFields(42, R - ts) });
  });

  it.each([
    ["1 ms beyond the future limit", R + 10 * MINUTE + 1],
    ["1 ms beyond the past limit", R - 60 * DAY - 1],
    ["at the epoch", 0],
  ])("stores a device time %s at receive time, flagged", (_case, ts) => {
    const { records, skewed } = messagePoints(message("telemetry", { ...sample, ts }), ctx());
    expect(skewed).toBe(1);
    expect(records[0]?.point.timeNs).toBe(pointTimeNs(R, 42));
    expect(records[0]?.point.fields).toEqual({
      snr: 7.5,
      up: 1,
      ...stampFields(42, R - ts),
      clock_skewed: true,
      device_ts: { int: ts },
    });
  });

  it.each<[string, number | boolean, string]>([
    ["true as 1", true, "1"],
    ["false as 0", false, "0"],
    ["an integer-looking number as a float, without the i suffix", 5, "5"],
    ["zero as a float", 0, "0"],
    ["a negative fraction", -0.25, "-0.25"],
    ["a very large number in exponent form", 1e21, "1e+21"],
    ["a very small number in exponent form", 1e-7, "1e-7"],
  ])("stores %s, so no device can fix another type for the metric", (_case, value, encoded) => {
    const point = onlyPoint("telemetry", { ...sample, metrics: { m: value } });
    expect(encodePoint(point)).toBe(
      `telemetry,${TAGS} m=${encoded},seq=42i,received_ms=1736150400000i,skew_ms=1000i 1736150399000000042`,
    );
  });

  it("keeps a metric named __proto__ as a metric", () => {
    const metrics = JSON.parse('{"__proto__": 1}') as Record<string, number>;
    const body = { ...sample, metrics };
    const { records } = messagePoints({ deviceId: ID, channel: "telemetry", body: [body] }, ctx());
    expect(Object.keys(records[0]?.point.fields ?? {})).toContain("__proto__");
  });

  it("tags a sample whose seq is 10^6 or more with seq_hi, so seqs 7 and 1,000,007 in one millisecond are two points", () => {
    const samples = [
      { ts: R - 1000, seq: 7, metrics: { v: 7 } },
      { ts: R - 1000, seq: 1_000_007, metrics: { v: 1 } },
    ];
    const { records } = messagePoints(message("telemetry", samples), ctx());
    expect(records.map((r) => encodePoint(r.point))).toEqual([
      `telemetry,${TAGS} v=7,seq=7i,received_ms=1736150400000i,skew_ms=1000i 1736150399000000007`,
      `telemetry,${TAGS},seq_hi=1 v=1,seq=1000007i,received_ms=1736150400000i,skew_ms=1000i 1736150399000000007`,
    ]);
  });

  it("tags samples stamped at receive time with seq_hi too", () => {
    const samples = [
      { ts: 0, seq: 7, metrics: { v: 7 } },
      { ts: 0, seq: 2_000_007, metrics: { v: 2 } },
    ];
    const { records } = messagePoints(message("telemetry", samples), ctx());
    expect(records.map((r) => [r.point.tags.seq_hi, r.point.timeNs])).toEqual([
      [undefined, pointTimeNs(R, 7)],
      ["2", pointTimeNs(R, 7)],
    ]);
  });

  it("counts the skewed samples of an array", () => {
    const samples = [
      { ts: R, seq: 1, metrics: { a: 1 } },
      { ts: R + DAY, seq: 2, metrics: { a: 1 } },
      { ts: R - 90 * DAY, seq: 3, metrics: { a: 1 } },
    ];
    expect(messagePoints(message("telemetry", samples), ctx()).skewed).toBe(2);
  });

  it("gives a redelivery the same dedupe key and time, and different messages different keys", () => {
    const key = (body: unknown, context = ctx()) =>
      messagePoints(message("telemetry", body), context).records.map((r) => [r.dedupe, r.point.timeNs]);
    const first = key(sample);
    expect(first).toEqual([[`${ID}/telemetry/42/${R - 1000}`, pointTimeNs(R - 1000, 42)]]);
    expect(key(sample, ctx({ receivedMs: R + 5000, discriminator: 99, meta: undefined }))).toEqual(first);
    expect(key({ ...sample, seq: 43 })[0]?.[0]).not.toBe(first[0]?.[0]);
    expect(key({ ...sample, ts: R - 999 })[0]?.[0]).not.toBe(first[0]?.[0]);
  });

  it("gives a redelivered skewed message the same dedupe key though its time differs", () => {
    const body = { ...sample, ts: R + DAY };
    const a = messagePoints(message("telemetry", body), ctx()).records[0];
    const b = messagePoints(message("telemetry", body), ctx({ receivedMs: R + 1 })).records[0];
    expect(a?.dedupe).toBe(b?.dedupe);
    expect(a?.point.timeNs).not.toBe(b?.point.timeNs);
  });
});

describe("messagePoints for a fault", () => {
  const fault = { ts: R, seq: 2, code: "DSL_RESYNC", severity: "warning" };

  /** The fault point and its fault_list copy. */
  function faultPoints(body: unknown, context = ctx()): [Point, Point] {
    const { records } = messagePoints(message("fault", body), context);
    expect(records.map((r) => r.point.measurement)).toEqual(["fault", "fault_list"]);
    return [records[0]?.point as Point, records[1]?.point as Point];
  }

  it("tags code, severity and component and keeps message and context as fields", () => {
    const [point] = faultPoints({
      ...fault,
      message: 'CRC "storm"',
      component: "dsl",
      context: { crc: 3, p: "17a", vectoring: true },
    });
    expect(point.rp).toBe("long");
    expect(encodePoint(point)).toBe(
      `fault,code=DSL_RESYNC,component=dsl,device=modem-0001,fingerprint=7M6aCaEbxuknBCEW,firmware=2.4.1,kind=modem,model=FQ-M200,region=eu-west,severity=warning seq=2i,received_ms=1736150400000i,skew_ms=0i,device_id="${ID}",message="CRC \\"storm\\"",context="{\\"crc\\":3,\\"p\\":\\"17a\\",\\"vectoring\\":true}",fingerprint_key="modem/FQ-M200/DSL_RESYNC" 1736150400000000002`,
    );
  });

  it("copies it to fault_list, tagged only by the list's filters, the device and the rest as fields", () => {
    const [, listed] = faultPoints({
      ...fault,
      message: 'CRC "storm"',
      component: "dsl",
      context: { crc: 3 },
    });
    expect(listed.rp).toBe("long");
    // ns: (seq 2 mod 1000) × 1000 + (FNV-1a of modem-0001 = 2093309587) mod 1000 = 2587
    expect(encodePoint(listed)).toBe(
      `fault_list,code=DSL_RESYNC,firmware=2.4.1,kind=modem,model=FQ-M200,severity=warning device="${ID}",region="eu-west",fingerprint="7M6aCaEbxuknBCEW",seq=2i,received_ms=1736150400000i,skew_ms=0i,message="CRC \\"storm\\"",context="{\\"crc\\":3}",fingerprint_key="modem/FQ-M200/DSL_RESYNC",component="dsl" 1736150400000002587`,
    );
  });

  it("names the copy's device and region as the fault's, for a set-aside record", () => {
    const [point, listed] = faultPoints(fault);
    expect(deviceTagsOf(listed)).toEqual(deviceTagsOf(point));
  });

  it("gives the copy a dedupe key of its own, the same for a redelivery", () => {
    const keys = (context: PointContext) =>
      messagePoints(message("fault", fault), context).records.map((r) => r.dedupe);
    expect(keys(ctx())).toEqual([`${ID}/fault/2/${R}`, `${ID}/fault_list/2/${R}`]);
    expect(keys(ctx({ receivedMs: R + 5000, discriminator: 3 }))).toEqual(keys(ctx()));
  });

  it("stores a skewed fault's copy at its receive millisecond, keeping the claimed time", () => {
    const [point, listed] = faultPoints({ ...fault, ts: R + DAY, seq: 1_234_567 });
    expect(point.timeNs).toBe(pointTimeNs(R, 234_567));
    expect(listed.timeNs).toBe(pointTimeNs(R, 567_000 + 587));
    expect(listed.fields).toMatchObject({
      clock_skewed: true,
      device_ts: { int: R + DAY },
      seq: { int: 1_234_567 },
    });
    // The full seq is a field: the copy needs no seq_hi tag.
    expect(listed.tags).toEqual({
      kind: "modem",
      model: "FQ-M200",
      firmware: "2.4.1",
      code: "DSL_RESYNC",
      severity: "warning",
    });
  });

  it("keeps apart the copies of two devices' faults in one millisecond with the same tags", () => {
    const [, a] = faultPoints(fault);
    const { records } = messagePoints(
      { ...message("fault", fault), deviceId: "modem-0002" } as DecodedMessage,
      ctx(),
    );
    const b = records[1]?.point as Point;
    expect(b.tags).toEqual(a.tags);
    expect(b.timeNs).not.toBe(a.timeNs);
  });

  it("leaves out component, message and context when the fault has none", () => {
    const [point, listed] = faultPoints(fault);
    expect(point.tags.component).toBeUndefined();
    expect(point.fields).toEqual({
      ...stampFields(2),
      device_id: ID,
      fingerprint_key: "modem/FQ-M200/DSL_RESYNC",
    });
    expect(listed.fields).toEqual({
      device: ID,
      region: "eu-west",
      fingerprint: "7M6aCaEbxuknBCEW",
      ...stampFields(2),
      fingerprint_key: "modem/FQ-M200/DSL_RESYNC",
    });
  });

  it("tags the issue fingerprint the rules give, with its readable key as a field", () => {
    const rules = {
      version: 1 as const,
      rules: [{ match: { code: ["DSL_RESYNC", "DSL_RETRAIN"] }, mergeAs: "DSL_LINE_UNSTABLE" }],
    };
    const { records } = messagePoints(message("fault", fault), { ...ctx(), fingerprintRules: rules });
    const point = records[0]?.point;
    expect(point?.tags.fingerprint).toBe(fingerprintId("modem/FQ-M200/DSL_LINE_UNSTABLE"));
    expect(point?.fields.fingerprint_key).toBe("modem/FQ-M200/DSL_LINE_UNSTABLE");
    expect(point?.tags.code).toBe("DSL_RESYNC");
    expect(records[1]?.point.fields.fingerprint).toBe(fingerprintId("modem/FQ-M200/DSL_LINE_UNSTABLE"));
  });
});

describe("messagePoints for an event", () => {
  const base = { ts: R, seq: 3 };

  it.each<[string, Record<string, unknown> | undefined, Record<string, unknown>]>([
    ["reboot", { reason: "watchdog" }, { reason: "watchdog" }],
    [
      "firmware_update",
      { from: "2.4.1", to: "2.5.0", result: "failure" },
      { from: "2.4.1", to: "2.5.0", result: "failure" },
    ],
    [
      "print_job",
      { result: "failed", job_id: "job-1", duration_s: 42.5 },
      { result: "failed", job_id: "job-1", duration_s: 42.5 },
    ],
    ["print_job", { result: "success" }, { result: "success" }],
    ["feedback", { rating: 3, comment: "slow" }, { rating: 3, comment: "slow" }],
    ["feedback", { rating: 0 }, { rating: 0 }],
    [
      "door_open",
      { door: "front", count: 2, locked: false },
      { data: '{"door":"front","count":2,"locked":false}' },
    ],
    ["factory_reset", undefined, {}],
  ])("stores a %s event's data as fields", (type, data, fields) => {
    const point = onlyPoint("event", { ...base, type, ...(data ? { data } : {}) });
    expect(point.measurement).toBe("event");
    expect(point.rp).toBe("long");
    expect(point.tags).toEqual({
      device: ID,
      kind: "modem",
      model: "FQ-M200",
      firmware: "2.4.1",
      region: "eu-west",
      type,
    });
    expect(point.fields).toEqual({ ...fields, ...stampFields(3) });
    expect(point.timeNs).toBe(pointTimeNs(R, 3));
  });

  it("changes the device's firmware after a successful update, from the next point on", () => {
    const update = {
      ...base,
      type: "firmware_update",
      data: { from: "2.4.1", to: "2.5.0", result: "success" },
    };
    const result = messagePoints(message("event", update), ctx());
    expect(result.meta).toEqual({ ...META, firmware: "2.5.0" });
    expect(result.records[0]?.point.tags.firmware).toBe("2.4.1");
  });

  it("starts from unknown metadata when a device updates before any hello", () => {
    const update = { ...base, type: "firmware_update", data: { from: "1", to: "2", result: "success" } };
    expect(messagePoints(message("event", update), ctx({ meta: undefined })).meta).toEqual({
      ...unknownMeta(),
      firmware: "2",
    });
  });

  it.each(["failure", "rolled_back"])("keeps the firmware after an update that ended in %s", (outcome) => {
    const update = {
      ...base,
      type: "firmware_update",
      data: { from: "2.4.1", to: "2.5.0", result: outcome },
    };
    expect(messagePoints(message("event", update), ctx()).meta).toBeUndefined();
  });

  it.each(["reboot", "feedback"])("leaves the metadata alone for a %s", (type) => {
    const data = type === "reboot" ? { reason: "x" } : { rating: 1 };
    expect(messagePoints(message("event", { ...base, type, data }), ctx()).meta).toBeUndefined();
  });
});

describe("messagePoints for a status", () => {
  it.each([
    ["the device", undefined, "device"],
    ["the device, said explicitly", "device", "device"],
    ["the last will", "will", "will"],
  ] as const)("writes a presence point at receive time with the source of %s", (_case, source, tag) => {
    const context = source ? ctx({ statusSource: source }) : ctx();
    const { records, skewed } = messagePoints(message("status", { state: "offline" }), context);
    expect(skewed).toBe(0);
    expect(records).toHaveLength(1);
    expect(records[0]?.dedupe).toBeUndefined();
    expect(encodePoint(records[0]?.point as Point)).toBe(
      `presence,${TAGS},source=${tag} state="offline",received_ms=1736150400000i 1736150400000000007`,
    );
  });
});

describe("messagePoints for a command result", () => {
  it("writes a command point with the command id at the device's time", () => {
    const { records } = messagePoints(
      message("cmd/cmd-7/result", { ts: R, seq: 9, ok: false, message: "busy" }),
      ctx(),
    );
    expect(records[0]?.dedupe).toBe(`${ID}/cmd-result/9/${R}`);
    expect(encodePoint(records[0]?.point as Point)).toBe(
      `command,${TAGS} command_id="cmd-7",ok=false,seq=9i,received_ms=1736150400000i,skew_ms=0i,message="busy" 1736150400000000009`,
    );
  });
});

describe("point identity", () => {
  const seq = 3_000_042;
  it.each<[string, string, unknown]>([
    ["fault", "fault", { ts: R, seq, code: "X", severity: "info" }],
    ["event", "event", { ts: R, seq, type: "reboot", data: { reason: "watchdog" } }],
    ["command result", "cmd/c-1/result", { ts: R, seq, ok: true }],
  ])(
    "tags a %s with seq_hi beside its nanoseconds, and keeps it out of the device tags",
    (_case, channel, body) => {
      const point = messagePoints(message(channel, body), ctx()).records[0]?.point as Point;
      expect(point.tags.seq_hi).toBe("3");
      expect(point.timeNs).toBe(pointTimeNs(R, 42));
      expect(deviceTagsOf(point)).not.toHaveProperty("seq_hi");
    },
  );
});

describe("stored field types", () => {
  const typeOf = (value: unknown) =>
    typeof value === "object" && value !== null
      ? "integer"
      : typeof value === "number"
        ? "float"
        : typeof value;

  it("give each field of each measurement one type, whatever values the accepted messages hold", () => {
    const ts = R - 1000;
    const messages: Array<[string, unknown]> = [
      ["hello", { kind: "modem", model: "M", firmware: "1", hardware: "A", serial: "S" }],
      ["telemetry", { ts, seq: 1, metrics: { m: true, n: 5 } }],
      ["telemetry", { ts: 0, seq: 2, metrics: { m: 7.5, n: false } }],
      ["telemetry", { ts: R + DAY, seq: 3, metrics: { m: 0, n: -1e21 } }],
      [
        "fault",
        { ts, seq: 4, code: "A", severity: "info", message: "5", context: { a: 1, b: true, c: "x" } },
      ],
      ["fault", { ts: 0, seq: 5, code: "A", severity: "error", context: { a: "1", b: 2.5 } }],
      ["event", { ts, seq: 6, type: "reboot", data: { reason: "watchdog" } }],
      ["event", { ts, seq: 7, type: "firmware_update", data: { from: "1", to: "2", result: "failure" } }],
      ["event", { ts, seq: 8, type: "print_job", data: { result: "success", job_id: "7", duration_s: 12 } }],
      ["event", { ts, seq: 9, type: "print_job", data: { result: "failed", duration_s: 12.5 } }],
      ["event", { ts, seq: 10, type: "feedback", data: { rating: 7, comment: "8" } }],
      ["event", { ts, seq: 11, type: "custom", data: { result: 1, reason: true } }],
      ["event", { ts: 0, seq: 12, type: "custom" }],
      ["cmd/c-1/result", { ts, seq: 13, ok: false, message: "no" }],
      ["cmd/c-2/result", { ts: 0, seq: 14, ok: true }],
      ["status", { state: "offline" }],
    ];
    const types = new Map<string, Set<string>>();
    for (const [channel, body] of messages) {
      for (const { point } of messagePoints(message(channel, body), ctx()).records) {
        for (const [field, value] of Object.entries(point.fields)) {
          const key = `${point.measurement}.${field}`;
          types.set(key, (types.get(key) ?? new Set()).add(typeOf(value)));
        }
      }
    }
    const mixed = [...types].filter(([, found]) => found.size > 1).map(([key, found]) => [key, [...found]]);
    expect(mixed).toEqual([]);
    expect(types.get("telemetry.m")).toEqual(new Set(["float"]));
    expect(types.get("event.duration_s")).toEqual(new Set(["float"]));
    expect(types.get("event.rating")).toEqual(new Set(["float"]));
  });
});

describe("presencePoint and rejectionPoint", () => {
  const tags = { device: ID, kind: "unknown", model: "unknown", firmware: "unknown", region: "unknown" };

  it("writes a broker presence point", () => {
    expect(encodePoint(presencePoint(tags, { receivedMs: R, discriminator: 1 }, "online", "broker"))).toBe(
      `presence,device=modem-0001,firmware=unknown,kind=unknown,model=unknown,region=unknown,source=broker state="online",received_ms=1736150400000i 1736150400000000001`,
    );
  });

  it("writes a rejection with its reason tag and cuts topic and detail short", () => {
    const point = rejectionPoint(
      tags,
      { receivedMs: R, discriminator: 2 },
      { reason: "invalid_json", topic: `fq/v1/${ID}/${"x".repeat(300)}`, detail: "d".repeat(400), bytes: 12 },
    );
    expect(point.tags.reason).toBe("invalid_json");
    expect(point.rp).toBe("long");
    expect(point.fields).toEqual({
      topic: `fq/v1/${ID}/${"x".repeat(300)}`.slice(0, 256),
      detail: "d".repeat(300),
      bytes: { int: 12 },
      received_ms: { int: R },
    });
    expect(point.timeNs).toBe(pointTimeNs(R, 2));
  });
});
