import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import {
  Command,
  CommandResult,
  DeviceError,
  Fault,
  FeedbackEvent,
  FirmwareUpdateEvent,
  Hello,
  KNOWN_EVENT_TYPES,
  LABEL_PATTERN,
  METRIC_NAME_PATTERN,
  OtherEvent,
  PrintJobEvent,
  REJECT_REASONS,
  RESERVED_FIELDS,
  RESERVED_TAG_KEYS,
  RebootEvent,
  Status,
  TelemetrySample,
} from "../../contract/messages.js";
import { DEVICE_ID_PATTERN, parseDeviceTopic, UPLINK_CHANNELS } from "../../contract/topics.js";
import { decodeMessage } from "../../ingest/decode.js";

// docs/protocol.md is the device contract for firmware engineers; this keeps it true to contract/*.ts.

const DOC = readFileSync(new URL("../../docs/protocol.md", import.meta.url), "utf8");

/** Each field table sits under a heading "#### `SchemaName` fields". */
const SCHEMAS: Record<string, z.ZodType> = {
  Hello,
  TelemetrySample,
  Fault,
  RebootEvent,
  FirmwareUpdateEvent,
  PrintJobEvent,
  FeedbackEvent,
  OtherEvent,
  Status,
  Command,
  CommandResult,
  DeviceError,
};

type Example = { topic: string; payload: string };

function examples(markdown: string): Example[] {
  return [...markdown.matchAll(/^```json topic=(\S+)\n([\s\S]*?)^```$/gm)].map((m) => ({
    topic: m[1] as string,
    payload: m[2] as string,
  }));
}

type Row = { cells: string[] };

/** The rows of the first table after each heading, keyed by the heading's text. */
function tables(markdown: string): Map<string, Row[]> {
  const found = new Map<string, Row[]>();
  let heading: string | undefined;
  let rows: Row[] | undefined;
  for (const line of markdown.split("\n")) {
    const h = /^#{1,6} (.+)$/.exec(line);
    if (h) {
      heading = h[1];
      rows = undefined;
      continue;
    }
    if (heading === undefined || !line.startsWith("|")) {
      if (rows) heading = undefined;
      continue;
    }
    if (!rows) {
      rows = [];
      found.set(heading, rows);
      continue; // the header row
    }
    if (/^\|\s*-/.test(line)) continue;
    rows.push({
      cells: line
        .split("|")
        .slice(1, -1)
        .map((c) => c.trim()),
    });
  }
  return found;
}

const backticked = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1] as string);

const unwrap = (schema: z.ZodType): z.ZodType =>
  schema instanceof z.ZodOptional ? (schema.unwrap() as z.ZodType) : schema;

function fieldAt(schema: z.ZodType, path: string[]): z.ZodType | undefined {
  let current: z.ZodType | undefined = schema;
  for (const name of path) {
    const object: z.ZodType | undefined = current ? unwrap(current) : undefined;
    if (!(object instanceof z.ZodObject)) return undefined;
    current = (object.shape as Record<string, z.ZodType>)[name];
  }
  return current;
}

/** Every field path of a schema, nested objects included ("data", "data.reason"). */
function fieldPaths(schema: z.ZodType, prefix = ""): string[] {
  const object = unwrap(schema);
  if (!(object instanceof z.ZodObject)) return [];
  return Object.entries(object.shape as Record<string, z.ZodType>).flatMap(([name, field]) => [
    `${prefix}${name}`,
    ...fieldPaths(field, `${prefix}${name}.`),
  ]);
}

function allowedValues(field: z.ZodType): string[] | undefined {
  const inner = unwrap(field);
  if (inner instanceof z.ZodEnum) return inner.options.map(String);
  if (inner instanceof z.ZodLiteral) return [...inner.values].map(String);
  return undefined;
}

/** Differences between the doc's field tables and the schemas, one sentence each. */
function fieldTableProblems(markdown: string): string[] {
  const problems: string[] = [];
  const byHeading = tables(markdown);
  for (const [name, schema] of Object.entries(SCHEMAS)) {
    const rows = byHeading.get(`\`${name}\` fields`);
    if (!rows) {
      problems.push(`${name}: no field table`);
      continue;
    }
    const documented = new Set<string>();
    for (const { cells } of rows) {
      const [fieldCell = "", , requiredCell = "", constraintCell = ""] = cells;
      const path = backticked(fieldCell)[0] ?? fieldCell;
      documented.add(path);
      const field = fieldAt(schema, path.split("."));
      if (!field) {
        problems.push(`${name}.${path}: documented but not in the schema`);
        continue;
      }
      const required = !(field instanceof z.ZodOptional);
      if (requiredCell !== (required ? "yes" : "no"))
        problems.push(`${name}.${path}: required is "${requiredCell}", the schema says ${required}`);
      const values = allowedValues(field);
      const listed = backticked(constraintCell);
      if (values && listed.length > 0 && [...listed].sort().join() !== [...values].sort().join())
        problems.push(`${name}.${path}: lists ${listed.join(", ")}, the schema allows ${values.join(", ")}`);
    }
    for (const path of fieldPaths(schema)) {
      if (!documented.has(path)) problems.push(`${name}.${path}: in the schema but not documented`);
    }
  }
  return problems;
}

describe("docs/protocol.md examples", () => {
  const all = examples(DOC);

  it("has examples to check", () => {
    expect(all.length).toBeGreaterThanOrEqual(10);
  });

  it.each(all.map((e, i) => [i, e.topic, e] as const))("example %i on %s is valid", (_i, topic, example) => {
    const parsed = parseDeviceTopic(topic);
    expect(parsed).toBeDefined();
    if (parsed?.channel === "errors") {
      expect(DeviceError.safeParse(JSON.parse(example.payload)).error).toBeUndefined();
      return;
    }
    if (parsed?.channel === "cmd") {
      expect(Command.safeParse(JSON.parse(example.payload)).error).toBeUndefined();
      return;
    }
    const decoded = decodeMessage(topic, Buffer.from(example.payload), 65536);
    expect(decoded.ok ? undefined : decoded.refusal).toBeUndefined();
  });

  it.each([...UPLINK_CHANNELS, "cmd", "cmd-result", "errors"])("shows at least one %s message", (channel) => {
    expect(all.some((e) => parseDeviceTopic(e.topic)?.channel === channel)).toBe(true);
  });

  it("shows a telemetry array as well as a single sample", () => {
    const telemetry = all.filter((e) => parseDeviceTopic(e.topic)?.channel === "telemetry");
    const shapes = new Set(telemetry.map((e) => Array.isArray(JSON.parse(e.payload))));
    expect(shapes).toEqual(new Set([true, false]));
  });

  const eventTypes = all
    .filter((e) => parseDeviceTopic(e.topic)?.channel === "event")
    .map((e) => (JSON.parse(e.payload) as { type: string }).type);

  it.each(KNOWN_EVENT_TYPES)("shows a %s event", (type) => {
    expect(eventTypes).toContain(type);
  });

  it("shows an event of another type", () => {
    expect(eventTypes.some((t) => !(KNOWN_EVENT_TYPES as readonly string[]).includes(t))).toBe(true);
  });
});

describe("docs/protocol.md field tables", () => {
  it("match the schemas field for field, with requiredness and allowed values", () => {
    expect(fieldTableProblems(DOC)).toEqual([]);
  });

  it("would catch a documented field the schema lacks", () => {
    const doctored = DOC.replace("| `isp` | string | no | Label |", "| `ipv6` | string | no | Label |");
    expect(doctored).not.toBe(DOC);
    expect(fieldTableProblems(doctored)).toEqual([
      "Hello.ipv6: documented but not in the schema",
      "Hello.isp: in the schema but not documented",
    ]);
  });

  it("would catch a wrong enum list or requiredness", () => {
    const doctored = DOC.replace(
      "| `severity` | string | yes | one of `info`, `warning`, `error`, `critical` |",
      "| `severity` | string | no | one of `info`, `warning`, `error` |",
    );
    expect(doctored).not.toBe(DOC);
    expect(fieldTableProblems(doctored)).toEqual([
      'Fault.severity: required is "no", the schema says true',
      "Fault.severity: lists info, warning, error, the schema allows info, warning, error, critical",
    ]);
  });

  it("lists every refusal reason, and no other", () => {
    const rows = tables(DOC).get("Refusals") ?? [];
    expect(rows.map((r) => backticked(r.cells[0] ?? "")[0])).toEqual([...REJECT_REASONS]);
  });

  it.each([
    ["the label pattern", LABEL_PATTERN.source],
    ["the metric name pattern", METRIC_NAME_PATTERN.source],
    ["the device id pattern", DEVICE_ID_PATTERN.source],
  ])("quotes %s exactly", (_name, source) => {
    expect(DOC).toContain(`\`${source}\``);
  });

  it("names exactly the reserved metric names", () => {
    const line = DOC.split("\n").find((l) => l.startsWith("| MetricName |")) ?? "";
    const reserved = backticked(line.slice(line.indexOf("reserved names")));
    expect(reserved).toEqual([...RESERVED_FIELDS]);
  });

  it("names exactly the reserved tag keys", () => {
    const line = DOC.split("\n").find((l) => l.startsWith("| MetricName |")) ?? "";
    const tagKeys = backticked(line.slice(line.indexOf("tag key"), line.indexOf("reserved names")));
    expect(tagKeys).toEqual([...RESERVED_TAG_KEYS]);
  });
});
