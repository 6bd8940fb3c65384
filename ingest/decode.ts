import type { z } from "zod";
import {
  CommandResult,
  type Event,
  eventSchemaFor,
  Fault,
  Hello,
  MAX_SAMPLE_METRICS,
  MAX_TS_MS,
  METRIC_NAME_PATTERN,
  RESERVED_NAMES,
  type RejectReason,
  Status,
  TelemetryBatch,
  TelemetrySample,
} from "../contract/messages.js";
import { parseDeviceTopic } from "../contract/topics.js";

// Topic + payload bytes → a typed message, or the reason it was refused. Never throws.

export type DecodedMessage =
  | { channel: "hello"; deviceId: string; body: Hello }
  | { channel: "telemetry"; deviceId: string; body: TelemetrySample[] }
  | { channel: "fault"; deviceId: string; body: Fault }
  | { channel: "event"; deviceId: string; body: Event }
  | { channel: "status"; deviceId: string; body: Status }
  | { channel: "cmd-result"; deviceId: string; commandId: string; body: CommandResult };

export type Refusal = { reason: RejectReason; message: string };

export type Decoded = { ok: true; message: DecodedMessage } | { ok: false; refusal: Refusal };

const refuse = (reason: RejectReason, message: string): Decoded => ({
  ok: false,
  refusal: { reason, message },
});

/** "metrics.snr: expected number, received string" for the first problem, kept short for the device. */
function describe(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return "does not match the schema";
  const path = issue.path.length > 0 ? `${issue.path.join(".")}: ` : "";
  const more = error.issues.length > 1 ? ` (and ${error.issues.length - 1} more)` : "";
  // A refused record key says only "Invalid key in record"; what is wrong with the key is inside.
  const why = issue.code === "invalid_key" ? (issue.issues[0]?.message ?? issue.message) : issue.message;
  return `${path}${why}${more}`.slice(0, 300);
}

function parseWith<T>(
  schema: z.ZodType<T>,
  json: unknown,
): { ok: true; value: T } | { ok: false; refusal: Refusal } {
  const result = schema.safeParse(json);
  return result.success
    ? { ok: true, value: result.data }
    : { ok: false, refusal: { reason: "invalid_schema", message: describe(result.error) } };
}

/**
 * The shape nearly every message has, checked by hand: strictly narrower than TelemetrySample, which stays
 * the contract. Whatever this does not accept goes to zod, which accepts or words the refusal.
 */
export function plainTelemetrySample(json: unknown): json is TelemetrySample {
  if (typeof json !== "object" || json === null || Array.isArray(json)) return false;
  const { ts, seq, metrics } = json as Record<string, unknown>;
  let keys = 0;
  for (const key in json) {
    if (!Object.hasOwn(json, key) || (key !== "ts" && key !== "seq" && key !== "metrics")) return false;
    keys += 1;
  }
  if (keys !== 3) return false;
  if (typeof ts !== "number" || !Number.isSafeInteger(ts) || ts < 0 || ts > MAX_TS_MS) return false;
  if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 0) return false;
  if (typeof metrics !== "object" || metrics === null || Array.isArray(metrics)) return false;
  let count = 0;
  for (const name in metrics) {
    if (!Object.hasOwn(metrics, name)) return false;
    if (!METRIC_NAME_PATTERN.test(name) || RESERVED_NAMES.has(name)) return false;
    const value = (metrics as Record<string, unknown>)[name];
    if (typeof value !== "boolean" && !(typeof value === "number" && Number.isFinite(value))) return false;
    if (++count > MAX_SAMPLE_METRICS) return false;
  }
  return count > 0;
}

// Fatal: invalid UTF-8 inside a string would otherwise be stored as U+FFFD. ignoreBOM keeps a leading BOM in
// the text, so a payload with one stays "not one JSON document", as it always was.
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * The path of the first `__proto__` key in a parsed document. JSON.parse keeps it as an own key, but zod's
 * records drop it silently, so it is refused by name here instead. Iterative: nesting depth is the sender's.
 */
function findProtoKey(json: unknown): string | undefined {
  const stack: Array<{ value: unknown; path: string[] }> = [{ value: json, path: [] }];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const { value, path } = next;
    if (typeof value !== "object" || value === null) continue;
    if (!Array.isArray(value) && Object.hasOwn(value, "__proto__")) return [...path, "__proto__"].join(".");
    const entries = Object.entries(value);
    for (let i = entries.length - 1; i >= 0; i--) {
      const [key, child] = entries[i] as [string, unknown];
      if (typeof child === "object" && child !== null) stack.push({ value: child, path: [...path, key] });
    }
  }
  return undefined;
}

export function decodeMessage(topic: string, payload: Buffer, maxPayloadBytes: number): Decoded {
  if (payload.length > maxPayloadBytes) {
    return refuse("too_large", `payload of ${payload.length} bytes is over the limit of ${maxPayloadBytes}`);
  }
  const parsed = parseDeviceTopic(topic);
  if (!parsed || parsed.channel === "errors" || parsed.channel === "cmd") {
    return refuse("unknown_channel", `${topic} is not a topic devices publish on`);
  }
  let text: string;
  try {
    text = utf8.decode(payload);
  } catch {
    return refuse("invalid_json", "payload is not JSON: it is not valid UTF-8");
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return refuse("invalid_json", `payload is not JSON: ${(error as Error).message}`.slice(0, 300));
  }
  // Such a key is spelled out in the text, or written with a \u escape.
  const proto = text.includes("__proto__") || text.includes("\\u") ? findProtoKey(json) : undefined;
  if (proto !== undefined) return refuse("invalid_schema", `${proto}: "__proto__" is not an allowed key`);
  const { deviceId } = parsed;
  switch (parsed.channel) {
    case "hello": {
      const r = parseWith(Hello, json);
      return r.ok ? { ok: true, message: { channel: "hello", deviceId, body: r.value } } : r;
    }
    case "telemetry": {
      // The union's members are tried by shape first, so a refusal names the field at fault.
      if (Array.isArray(json)) {
        const r = parseWith(TelemetryBatch, json);
        return r.ok ? { ok: true, message: { channel: "telemetry", deviceId, body: r.value } } : r;
      }
      if (plainTelemetrySample(json))
        return { ok: true, message: { channel: "telemetry", deviceId, body: [json] } };
      const r = parseWith(TelemetrySample, json);
      return r.ok ? { ok: true, message: { channel: "telemetry", deviceId, body: [r.value] } } : r;
    }
    case "fault": {
      const r = parseWith(Fault, json);
      return r.ok ? { ok: true, message: { channel: "fault", deviceId, body: r.value } } : r;
    }
    case "event": {
      const type = typeof json === "object" && json !== null ? (json as { type?: unknown }).type : undefined;
      const r = parseWith<Event>(eventSchemaFor(type), json);
      return r.ok ? { ok: true, message: { channel: "event", deviceId, body: r.value } } : r;
    }
    case "status": {
      const r = parseWith(Status, json);
      return r.ok ? { ok: true, message: { channel: "status", deviceId, body: r.value } } : r;
    }
    case "cmd-result": {
      const r = parseWith(CommandResult, json);
      return r.ok
        ? {
            ok: true,
            message: { channel: "cmd-result", deviceId, commandId: parsed.commandId, body: r.value },
          }
        : r;
    }
  }
}
