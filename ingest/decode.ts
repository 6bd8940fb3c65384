import type { z } from "zod";
import {
  CommandResult,
  type Event,
  eventSchemaFor,
  Fault,
  Hello,
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
  return `${path}${issue.message}${more}`.slice(0, 300);
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

export function decodeMessage(topic: string, payload: Buffer, maxPayloadBytes: number): Decoded {
  if (payload.length > maxPayloadBytes) {
    return refuse("too_large", `payload of ${payload.length} bytes is over the limit of ${maxPayloadBytes}`);
  }
  const parsed = parseDeviceTopic(topic);
  if (!parsed || parsed.channel === "errors" || parsed.channel === "cmd") {
    return refuse("unknown_channel", `${topic} is not a topic devices publish on`);
  }
  let json: unknown;
  try {
    json = JSON.parse(payload.toString("utf8"));
  } catch (error) {
    return refuse("invalid_json", `payload is not JSON: ${(error as Error).message}`.slice(0, 300));
  }
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
