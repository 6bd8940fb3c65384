import { describe, expect, it } from "vitest";
import {
  RESERVED_FIELDS,
  RESERVED_TAG_KEYS,
  TelemetryBatch,
  TelemetrySample,
} from "../../contract/messages.js";
import { decodeMessage, plainTelemetrySample } from "../../ingest/decode.js";

const MAX = 65536;
const T = 1_736_150_400_000;
const topic = (channel: string) => `fq/v1/modem-0001/${channel}`;
const json = (value: unknown) => Buffer.from(JSON.stringify(value));
const decode = (t: string, body: unknown, max = MAX) =>
  decodeMessage(t, Buffer.isBuffer(body) ? body : json(body), max);

const hello = { kind: "modem", model: "FQ-M200", firmware: "2.4.1", hardware: "rev C", serial: "S-1" };
const sample = { ts: T, seq: 1, metrics: { snr: 7.5, up: true } };
const fault = { ts: T, seq: 2, code: "DSL_RESYNC", severity: "warning" };
const reboot = { ts: T, seq: 3, type: "reboot", data: { reason: "watchdog" } };
const result = { ts: T, seq: 4, ok: true };

const many = (n: number, value: (i: number) => unknown) =>
  Object.fromEntries(Array.from({ length: n }, (_, i) => [`m${i}`, value(i)]));

describe("decodeMessage accepts", () => {
  it.each<[string, string, unknown]>([
    ["a hello", "hello", hello],
    ["a hello with region and isp", "hello", { ...hello, region: "eu-west", isp: "Example Telecom" }],
    ["a hello with Unicode labels", "hello", { ...hello, model: "Zürich Box 7 (ß)" }],
    ["a telemetry sample", "telemetry", sample],
    [
      "a telemetry array of 1000",
      "telemetry",
      Array.from({ length: 1000 }, (_, i) => ({ ...sample, seq: i })),
    ],
    ["200 metrics", "telemetry", { ...sample, metrics: many(200, (i) => i) }],
    [
      "a fault with everything",
      "fault",
      { ...fault, message: "a\tb\nc", component: "dsl", context: { a: 1 } },
    ],
    ["a fault with 32 context entries", "fault", { ...fault, context: many(32, () => "x") }],
    ["a reboot", "event", reboot],
    [
      "a firmware update",
      "event",
      { ...reboot, type: "firmware_update", data: { from: "1", to: "2", result: "rolled_back" } },
    ],
    ["a print job", "event", { ...reboot, type: "print_job", data: { result: "cancelled", duration_s: 0 } }],
    ["feedback", "event", { ...reboot, type: "feedback", data: { rating: 10, comment: "great" } }],
    ["an event of another type without data", "event", { ts: T, seq: 5, type: "factory_reset" }],
    [
      "an event of another type with data",
      "event",
      { ts: T, seq: 5, type: "door_open", data: { door: "front" } },
    ],
    ["an online status", "status", { state: "online" }],
    ["an offline status", "status", { state: "offline" }],
    ["a command result", "cmd/cmd-7/result", { ...result, message: "done" }],
    [
      "the largest ts and seq",
      "fault",
      { ...fault, ts: 8_640_000_000_000_000, seq: Number.MAX_SAFE_INTEGER },
    ],
  ])("%s", (_case, channel, body) => {
    const decoded = decode(topic(channel), body);
    expect(decoded.ok ? undefined : decoded.refusal).toBeUndefined();
  });

  it("a fault context keyed by names reserved for metrics: it is stored as one JSON string", () => {
    const context = { device: "x", type: 1, seq: true };
    expect(decode(topic("fault"), { ...fault, context })).toMatchObject({
      ok: true,
      message: { body: { context } },
    });
  });

  it("normalises one telemetry sample to a list of one", () => {
    expect(decode(topic("telemetry"), sample)).toEqual({
      ok: true,
      message: { channel: "telemetry", deviceId: "modem-0001", body: [sample] },
    });
  });

  it("keeps a telemetry array as the list it is, in order", () => {
    const samples = [sample, { ...sample, seq: 2 }, { ...sample, seq: 3 }];
    expect(decode(topic("telemetry"), samples)).toEqual({
      ok: true,
      message: { channel: "telemetry", deviceId: "modem-0001", body: samples },
    });
  });

  it("carries the command id of a command result from its topic", () => {
    expect(decode(topic("cmd/cmd-7/result"), result)).toEqual({
      ok: true,
      message: { channel: "cmd-result", deviceId: "modem-0001", commandId: "cmd-7", body: result },
    });
  });

  it("names the device and channel of a hello", () => {
    expect(decode("fq/v1/printer-9/hello", hello)).toEqual({
      ok: true,
      message: { channel: "hello", deviceId: "printer-9", body: hello },
    });
  });

  it("accepts a payload of exactly the limit", () => {
    const body = json({ state: "online" });
    expect(decode(topic("status"), body, body.length).ok).toBe(true);
  });
});

describe("decodeMessage refuses", () => {
  it.each<[string, string, Buffer, string]>([
    ["one byte over the limit", topic("status"), Buffer.from(' {"state":"online"}'), "too_large"],
    [
      "an oversized payload on a topic it would refuse anyway",
      topic("errors"),
      Buffer.alloc(19),
      "too_large",
    ],
    [
      "a payload over the limit in bytes though not in characters",
      topic("status"),
      Buffer.from('{"state":"éééé"}'),
      "too_large",
    ],
  ])("%s as too_large", (_case, t, body, reason) => {
    const decoded = decodeMessage(t, body, 18);
    expect(decoded).toMatchObject({ ok: false, refusal: { reason } });
  });

  it("says how large the payload was and what the limit is", () => {
    expect(decodeMessage(topic("status"), Buffer.alloc(19), 18)).toEqual({
      ok: false,
      refusal: { reason: "too_large", message: "payload of 19 bytes is over the limit of 18" },
    });
  });

  it.each([
    ["the errors topic", topic("errors")],
    ["a command topic", topic("cmd/cmd-7")],
    ["an unknown subtopic", topic("foo")],
    ["a subtopic of a command result", topic("cmd/cmd-7/result/extra")],
    ["a command id outside the pattern", topic("cmd/bad id/result")],
    ["the device prefix alone", "fq/v1/modem-0001"],
    ["another root", "other/modem-0001/telemetry"],
    ["a malformed device id", "fq/v1/bad id/telemetry"],
  ])("%s as unknown_channel", (_case, t) => {
    expect(decode(t, { state: "online" })).toEqual({
      ok: false,
      refusal: { reason: "unknown_channel", message: `${t} is not a topic devices publish on` },
    });
  });

  it.each([
    ["an empty payload", ""],
    ["truncated JSON", '{"state":'],
    ["text", "online"],
    ["two documents", '{"state":"online"}{"state":"offline"}'],
    ["single quotes", "{'state':'online'}"],
    ["invalid UTF-8", Buffer.from([0xff, 0xfe])],
  ])("%s as invalid_json", (_case, body) => {
    const decoded = decodeMessage(topic("status"), Buffer.isBuffer(body) ? body : Buffer.from(body), MAX);
    expect(decoded).toMatchObject({ ok: false, refusal: { reason: "invalid_json" } });
    if (!decoded.ok) expect(decoded.refusal.message).toMatch(/^payload is not JSON: /);
  });

  const withBytes = (before: string, bytes: number[], after: string) =>
    Buffer.concat([Buffer.from(before), Buffer.from(bytes), Buffer.from(after)]);
  const helloText = JSON.stringify({ ...hello, serial: "S-1" });
  const [serialBefore = "", serialAfter = ""] = helloText.split("S-1");
  const [modelBefore = "", modelAfter = ""] = helloText.split("FQ-M200");

  it("accepts the same documents in valid UTF-8", () => {
    expect(
      decodeMessage(topic("hello"), withBytes(serialBefore, [0xc3, 0xa9], serialAfter), MAX),
    ).toMatchObject({
      ok: true,
      message: { body: { serial: "é" } },
    });
  });

  it.each<[string, string, Buffer]>([
    ["a lone continuation byte in a serial", "hello", withBytes(serialBefore, [0x80], serialAfter)],
    ["0xFF in a serial", "hello", withBytes(serialBefore, [0x53, 0xff], serialAfter)],
    ["an overlong encoding of / in a serial", "hello", withBytes(serialBefore, [0xc0, 0xaf], serialAfter)],
    [
      "a UTF-16 surrogate encoded as UTF-8",
      "hello",
      withBytes(serialBefore, [0xed, 0xa0, 0x80], serialAfter),
    ],
    ["a truncated sequence in a label", "hello", withBytes(modelBefore, [0x4d, 0xc3], modelAfter)],
    [
      "a truncated sequence in a fault message",
      "fault",
      withBytes(`{"ts":${T},"seq":2,"code":"X","severity":"info","message":"a`, [0xe2, 0x82], '"}'),
    ],
  ])("invalid UTF-8 inside a JSON string (%s) as invalid_json", (_case, channel, body) => {
    expect(decodeMessage(topic(channel), body, MAX)).toEqual({
      ok: false,
      refusal: { reason: "invalid_json", message: "payload is not JSON: it is not valid UTF-8" },
    });
  });

  it.each<[string, string, string, string]>([
    ["metrics", "telemetry", `{"ts":${T},"seq":1,"metrics":{"__proto__":1,"snr":2}}`, "metrics.__proto__"],
    [
      "a sample of a telemetry array",
      "telemetry",
      `[{"ts":${T},"seq":1,"metrics":{"snr":2}},{"ts":${T},"seq":2,"metrics":{"__proto__":true}}]`,
      "1.metrics.__proto__",
    ],
    [
      "metrics, written with an escape",
      "telemetry",
      `{"ts":${T},"seq":1,"metrics":{"\\u005f_proto__":1,"snr":2}}`,
      "metrics.__proto__",
    ],
    [
      "a fault's context",
      "fault",
      `{"ts":${T},"seq":2,"code":"X","severity":"info","context":{"__proto__":"x"}}`,
      "context.__proto__",
    ],
    [
      "an event's data",
      "event",
      `{"ts":${T},"seq":3,"type":"door_open","data":{"door":"front","__proto__":{"polluted":1}}}`,
      "data.__proto__",
    ],
    ["a hello", "hello", `{"__proto__":{},"kind":"modem"}`, "__proto__"],
  ])("a __proto__ key in %s as invalid_schema, named", (_case, channel, text, path) => {
    expect(decodeMessage(topic(channel), Buffer.from(text), MAX)).toEqual({
      ok: false,
      refusal: { reason: "invalid_schema", message: `${path}: "__proto__" is not an allowed key` },
    });
  });

  it.each<[string, string, unknown, RegExp]>([
    ["a hello with an unknown field", "hello", { ...hello, extra: 1 }, /^Unrecognized key: "extra"/],
    ["a hello without serial", "hello", { ...hello, serial: undefined }, /^serial: /],
    ["a hello with an empty serial", "hello", { ...hello, serial: "" }, /^serial: /],
    ["a hello with a comma in a label", "hello", { ...hello, model: "a,b" }, /^model: must be 1-64 letters/],
    ["a hello with a 65-character label", "hello", { ...hello, firmware: "1".repeat(65) }, /^firmware: /],
    ["a hello label starting with a space", "hello", { ...hello, kind: " modem" }, /^kind: /],
    [
      "a serial with a carriage return",
      "hello",
      { ...hello, serial: "a\rb" },
      /^serial: must not contain control characters/,
    ],
    ["a fault with an unknown severity", "fault", { ...fault, severity: "fatal" }, /^severity: /],
    ["a fault with a fractional seq", "fault", { ...fault, seq: 1.5 }, /^seq: /],
    ["a fault with a negative ts", "fault", { ...fault, ts: -1 }, /^ts: /],
    ["a fault with ts as a string", "fault", { ...fault, ts: String(T) }, /^ts: /],
    [
      "a fault with a control character in context",
      "fault",
      { ...fault, context: { a: "x\u0001" } },
      /^context\.a: must not contain control characters/,
    ],
    ["a fault with a nested context", "fault", { ...fault, context: { a: { b: 1 } } }, /^context\.a: /],
    [
      "a fault with 33 context entries",
      "fault",
      { ...fault, context: many(33, () => 1) },
      /^context: must hold at most 32 entries/,
    ],
    ["a fault with a 1025-character message", "fault", { ...fault, message: "x".repeat(1025) }, /^message: /],
    ["a status with another state", "status", { state: "away" }, /^state: /],
    ["a status with an extra field", "status", { state: "online", ts: T }, /^Unrecognized key: "ts"/],
    ["a command result without ok", "cmd/cmd-7/result", { ts: T, seq: 1 }, /^ok: /],
    ["a reboot with an unknown field in data", "event", { ...reboot, data: { reason: "x", extra: 1 } }, /./],
    ["a feedback rating of 11", "event", { ...reboot, type: "feedback", data: { rating: 11 } }, /./],
    ["a fractional feedback rating", "event", { ...reboot, type: "feedback", data: { rating: 2.5 } }, /./],
    [
      "a negative print duration",
      "event",
      { ...reboot, type: "print_job", data: { result: "success", duration_s: -1 } },
      /./,
    ],
    [
      "a firmware update with an unknown result",
      "event",
      { ...reboot, type: "firmware_update", data: { from: "1", to: "2", result: "ok" } },
      /./,
    ],
    ["an event type with a comma", "event", { ts: T, seq: 1, type: "a,b" }, /./],
    ["an event without type", "event", { ts: T, seq: 1 }, /./],
    ["empty metrics", "telemetry", { ...sample, metrics: {} }, /^metrics: must hold 1-200 metrics/],
    ["201 metrics", "telemetry", { ...sample, metrics: many(201, (i) => i) }, /./],
    ["a reserved metric name", "telemetry", { ...sample, metrics: { seq: 1 } }, /./],
    ["a metric name starting with a digit", "telemetry", { ...sample, metrics: { "1x": 1 } }, /./],
    ["a string metric", "telemetry", { ...sample, metrics: { snr: "high" } }, /./],
    ["an empty telemetry array", "telemetry", [], /./],
    ["a telemetry array of 1001", "telemetry", Array.from({ length: 1001 }, () => sample), /./],
    ["a telemetry array with one bad sample", "telemetry", [sample, { ...sample, seq: -1 }], /./],
    ["JSON null", "status", null, /./],
    ["a JSON array for a fault", "fault", [fault], /./],
  ])("%s as invalid_schema", (_case, channel, body, message) => {
    const decoded = decode(topic(channel), body);
    expect(decoded).toMatchObject({ ok: false, refusal: { reason: "invalid_schema" } });
    if (!decoded.ok) {
      expect(decoded.refusal.message).toMatch(message);
      expect(decoded.refusal.message.length).toBeLessThanOrEqual(300);
    }
  });

  it.each([...RESERVED_TAG_KEYS, ...RESERVED_FIELDS])("a metric named %s, which fieldq reserves", (name) => {
    expect(decode(topic("telemetry"), { ...sample, metrics: { snr: 1, [name]: 1 } })).toEqual({
      ok: false,
      refusal: { reason: "invalid_schema", message: `metrics.${name}: is a reserved name` },
    });
  });

  it("names the metric at fault in a telemetry sample", () => {
    const decoded = decode(topic("telemetry"), { ...sample, metrics: { snr: "high" } });
    expect(decoded.ok ? "" : decoded.refusal.message).toMatch(/^metrics\.snr: /);
  });

  it("names the data field at fault in a reboot event", () => {
    const decoded = decode(topic("event"), { ...reboot, data: {} });
    expect(decoded.ok ? "" : decoded.refusal.message).toMatch(/^data\.reason: /);
  });
});

describe("the hand-checked telemetry sample", () => {
  const variants: Array<[string, unknown]> = [
    ["the common sample", sample],
    ["200 metrics", { ...sample, metrics: many(200, (i) => i) }],
    ["201 metrics", { ...sample, metrics: many(201, (i) => i) }],
    ["no metrics", { ...sample, metrics: {} }],
    ["metrics as an array", { ...sample, metrics: [1] }],
    ["metrics null", { ...sample, metrics: null }],
    ["a reserved metric name", { ...sample, metrics: { seq: 1 } }],
    ["a metric name starting with a digit", { ...sample, metrics: { "1x": 1 } }],
    ["a metric name of 65 characters", { ...sample, metrics: { [`a${"b".repeat(64)}`]: 1 } }],
    ["a string metric", { ...sample, metrics: { snr: "7" } }],
    ["a null metric", { ...sample, metrics: { snr: null } }],
    ["a nested metric", { ...sample, metrics: { snr: { v: 1 } } }],
    ["an infinite metric", JSON.parse(`{"ts":${T},"seq":1,"metrics":{"snr":1e999}}`)],
    ["a negative ts", { ...sample, ts: -1 }],
    ["a fractional ts", { ...sample, ts: T + 0.5 }],
    ["the largest ts", { ...sample, ts: 8_640_000_000_000_000 }],
    ["a ts past the largest", { ...sample, ts: 8_640_000_000_000_001 }],
    ["a string ts", { ...sample, ts: String(T) }],
    ["a negative seq", { ...sample, seq: -1 }],
    ["an unsafe seq", { ...sample, seq: Number.MAX_SAFE_INTEGER + 2 }],
    ["a fractional seq", { ...sample, seq: 1.5 }],
    ["no seq", { ts: T, metrics: sample.metrics }],
    ["an extra field", { ...sample, extra: 1 }],
    ["an array", [sample]],
    ["null", null],
    ["a number", 1],
  ];

  it.each(variants)("never takes what the contract refuses: %s", (_, value) => {
    const contract = TelemetrySample.safeParse(value);
    if (plainTelemetrySample(value)) expect(contract).toEqual({ success: true, data: value });
  });

  it.each(variants)("decodes as the contract alone would: %s", (_, value) => {
    const decoded = decode(topic("telemetry"), value);
    const contract = Array.isArray(value)
      ? TelemetryBatch.safeParse(value)
      : TelemetrySample.safeParse(value);
    expect(decoded.ok).toBe(contract.success);
    if (decoded.ok && contract.success) {
      const body = Array.isArray(contract.data) ? contract.data : [contract.data];
      expect(decoded.message.body).toEqual(body);
    }
  });

  it("takes the common sample itself, so the contract's parse is spared", () => {
    expect(plainTelemetrySample(sample)).toBe(true);
    expect(plainTelemetrySample({ ...sample, metrics: many(200, (i) => i % 2 === 0 || i) })).toBe(true);
  });
});
