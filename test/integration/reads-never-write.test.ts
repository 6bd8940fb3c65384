import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { fingerprintId } from "../../analytics/fingerprint.js";
import type { IssueEvent } from "../../contract/issue-events.js";
import { HOUR_MS, iso } from "../../contract/time.js";
import type { DeviceMetaRecord } from "../../ingest/journal.js";
import { activityPoint, deviceStatePoint, deviceTags, messagePoints } from "../../ingest/to-points.js";
import { silentLogger } from "../../observe/logger.js";
import { settleIssues } from "../../rollup/settle-issues.js";
import { type FieldqHandle, startFieldq } from "../../stack/start-stack.js";
import { createInflux, createPointWriter, ensureSchema, type PointWriter } from "../../storage/influx.js";
import { queryGroups } from "../../storage/influxql.js";
import { issueEventPoint } from "../../storage/issue-queries.js";
import type { Point } from "../../storage/schema.js";
import { testDatabase } from "../support/influx.js";
import { rollingUp } from "../support/rollups.js";
import { testConfig } from "../support/stack.js";

// Reads never write: the API process, as `fieldq start --api-only` runs it, answers every GET route of its
// OpenAPI document over a database holding an issue whose fix is released and has recurred on the fix (so
// there is something a read could be tempted to settle), and the database holds exactly the points it held
// before, measurement by measurement and field by field.

const NOW = Date.now();
const T = Math.floor(NOW / HOUR_MS) * HOUR_MS - 8 * HOUR_MS;

const meta = (firmware: string, slot: number): DeviceMetaRecord & { slot: number } => ({
  kind: "printer",
  model: "L1",
  firmware,
  hardware: "h1",
  region: "eu",
  isp: "isp1",
  serial: `SN-${slot}`,
  slot,
  firstMs: T,
});
const old = { id: "printer-0001", meta: meta("1.0", 1) };
const fixed = { id: "printer-0002", meta: meta("2.0", 2) };
type Dev = typeof old;

const F = fingerprintId("printer/L1/NOZZLE_JAM");

let seq = 0;
function message(
  device: Dev,
  ms: number,
  channel: "hello" | "fault" | "telemetry" | "event",
  body: object,
): Point[] {
  seq += 1;
  const stamped = channel === "hello" ? body : { ts: ms, seq, ...body };
  const { records } = messagePoints(
    {
      channel,
      deviceId: device.id,
      body: channel === "telemetry" ? [stamped] : stamped,
    } as Parameters<typeof messagePoints>[0],
    {
      meta: device.meta,
      receivedMs: ms + 100,
      clockSkewFutureMs: 600_000,
      clockSkewPastMs: 30 * 24 * HOUR_MS,
      discriminator: seq,
    },
  );
  return records.map((r) => r.point);
}

function deviceHistory(device: Dev, hours: readonly number[]): Point[] {
  const { kind, model, firmware, hardware, serial, region, isp } = device.meta;
  return [
    ...message(device, T, "hello", { kind, model, firmware, hardware, serial, region, isp }),
    ...message(device, T + 2 * HOUR_MS, "event", { type: "feedback", data: { rating: 7 } }),
    ...message(device, T + 2 * HOUR_MS + 1000, "event", { type: "paper_low", data: { tray: 2 } }),
    ...hours.flatMap((h) => [
      ...message(device, T + h * HOUR_MS + 60_000, "telemetry", { metrics: { temp_c: 40 + h } }),
      activityPoint(deviceTags(device.id, device.meta), T + h * HOUR_MS),
    ]),
    ...message(device, T + HOUR_MS + 120_000, "event", { type: "reboot", data: { reason: "watchdog" } }),
    deviceStatePoint({
      deviceId: device.id,
      record: device.meta,
      activity: {
        lastReportMs: T + 6 * HOUR_MS,
        lastSeenMs: T + 6 * HOUR_MS,
        presence: { state: "online", atMs: T, source: "broker" },
      },
      updatedMs: T + 6 * HOUR_MS,
    }),
  ];
}

const released: IssueEvent = {
  type: "transition",
  to: "fix_released",
  fixVersion: "2.0",
  actor: "operator:test",
  at: T + 2 * HOUR_MS,
};

/** Every point in the database, counted per measurement and field (SELECT count(*) per retention policy). */
async function pointCounts(influx: ReturnType<typeof createInflux>): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const rp of ["raw", "long", "autogen"]) {
    const [groups = []] = await queryGroups(influx, [`SELECT count(*) FROM "${rp}"./.*/`]);
    for (const g of groups) {
      for (const [column, value] of Object.entries(g.rows[0] ?? {})) {
        if (column !== "time") counts[`${rp}.${g.name}.${column}`] = Number(value);
      }
    }
  }
  const [series = []] = await queryGroups(influx, ["SHOW SERIES"]);
  counts.series = series.flatMap((g) => g.rows).length;
  return counts;
}

/** Values for the parameters the routes require; a route needing another one fails the test by name. */
const PARAMS: Record<string, string> = {
  metric: "temp_c",
  model: "L1",
  baseline: "1.0",
  candidate: "2.0",
  batch: "b1a2b3c4d-0f1e2d3c4b5a6978",
};

/** Routes whose resource this data set has none of (no alert was raised, no batch sent): read, and 404. */
const ABSENT: ReadonlySet<string> = new Set(["/api/v1/alerts/{id}", "/api/v1/commands"]);

type Operation = { parameters?: Array<{ name: string; in: string; required?: boolean }> };

describe("reads never write", () => {
  let db: Awaited<ReturnType<typeof testDatabase>>;
  let dataDir: string;
  let api: FieldqHandle;
  let influx: ReturnType<typeof createInflux>;

  beforeAll(async () => {
    db = await testDatabase("reads_never_write");
    influx = createInflux(db);
    await ensureSchema(influx, db);
    const write = rollingUp(influx, createPointWriter(db));
    await write([
      ...deviceHistory(old, [0, 1, 2, 3, 4, 5, 6]),
      ...deviceHistory(fixed, [3, 4, 5, 6]),
      ...message(old, T + 30 * 60_000, "fault", { code: "NOZZLE_JAM", severity: "error" }),
      // The recurrence on the fix.
      ...message(fixed, T + 5 * HOUR_MS + 60_000, "fault", { code: "NOZZLE_JAM", severity: "critical" }),
    ]);
    await createPointWriter(db)([issueEventPoint(F, released, 4242)]);
    dataDir = await mkdtemp(join(tmpdir(), "fieldq-reads-"));
    api = await startFieldq(testConfig(db, dataDir), { logger: silentLogger }, { broker: false, api: true });
  });

  afterAll(async () => {
    await api?.close();
    await db?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  test("the issue has something to settle, which only the runner would write", async () => {
    const recorded: Point[] = [];
    const dryRun: PointWriter = async (points) => {
      recorded.push(...points);
    };
    const { appended } = await settleIssues({ influx, write: dryRun, requiredHours: 500, now: () => NOW });
    expect(appended.map((e) => [e.issue, e.event.type])).toEqual([
      [F, "transition"],
      [F, "regression"],
    ]);
    expect(recorded).toHaveLength(2);
  });

  test("no GET route writes a point", async () => {
    const token = "viewer-token-1";
    const get = (path: string) =>
      fetch(`${api.apiUrl}${path}`, { headers: { authorization: `Bearer ${token}` } });
    const doc = (await (await get("/api/v1/openapi.json")).json()) as {
      paths: Record<string, { get?: Operation }>;
    };
    const window = `from=${encodeURIComponent(iso(T))}&to=${encodeURIComponent(iso(T + 8 * HOUR_MS))}`;
    const requests: string[] = ["/metrics", "/api/v1/openapi.json"];
    const absent = new Set<string>();
    for (const [path, item] of Object.entries(doc.paths)) {
      if (item.get === undefined) continue;
      const id = path.startsWith("/api/v1/issues") ? F : fixed.id;
      const concrete = path.replace("{id}", id);
      if (ABSENT.has(path)) absent.add(concrete.split("?")[0] as string);
      const query = new URLSearchParams();
      for (const p of item.get.parameters ?? []) {
        if (p.in !== "query" || p.required !== true) continue;
        const value = PARAMS[p.name];
        if (value === undefined) throw new Error(`${path} requires "${p.name}": add a value to PARAMS`);
        query.set(p.name, value);
      }
      const required = query.size > 0 ? `?${query}` : "";
      requests.push(`${concrete}${required}`);
      // Each route again over a window holding the data, where it takes one.
      if ((item.get.parameters ?? []).some((p) => p.name === "from"))
        requests.push(`${concrete}${required}${required ? "&" : "?"}${window}`);
    }
    expect(requests.length).toBeGreaterThan(15);

    const before = await pointCounts(influx);
    expect(before[`long.issue_event.count_event`]).toBe(1);
    const statuses: Record<string, number> = {};
    for (let round = 0; round < 2; round++) {
      for (const path of requests) statuses[path] = (await get(path)).status;
    }
    const expected = (path: string) => (absent.has(path.split("?")[0] as string) ? 404 : 200);
    expect(Object.entries(statuses).filter(([path, status]) => status !== expected(path))).toEqual([]);
    expect(await pointCounts(influx)).toEqual(before);
  });
});
