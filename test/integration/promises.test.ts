import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { fingerprintId } from "../../analytics/fingerprint.js";
import { ErrorEnvelope } from "../../contract/api/common.js";
import { type PromiseReport, PromisesAnswer } from "../../contract/api/promises.js";
import type { IssueEvent } from "../../contract/issue-events.js";
import type { Severity } from "../../contract/messages.js";
import { DAY_MS, floorDay, HOUR_MS, iso } from "../../contract/time.js";
import type { DeviceMetaRecord } from "../../ingest/journal.js";
import { activityPoint, deviceTags, messagePoints } from "../../ingest/to-points.js";
import { silentLogger } from "../../observe/logger.js";
import { createReadServices } from "../../services/read-services.js";
import { type FieldqHandle, startFieldq } from "../../stack/start-stack.js";
import { createInflux, createPointWriter, ensureSchema } from "../../storage/influx.js";
import { issueEventPoint } from "../../storage/issue-queries.js";
import type { Point } from "../../storage/schema.js";
import { testDatabase } from "../support/influx.js";
import { rollingUp } from "../support/rollups.js";
import { testConfig } from "../support/stack.js";

// Promises computed on a known fleet over the four complete UTC days before today (A, B, C, E), written with
// the ingest's own point builders and rolled up as the ingest does, then read from the whole stack (broker,
// ingest and API on port 0) over HTTP. The file promises, with objective 0.5 over 4 days (2 missed days of
// budget), lookback 1 day, at least 3 devices and 20 device-hours to judge a day:
//   M1: availability ≥ 0.75; critical faults ≤ 20 per 1,000 device-hours; a new critical issue answered in 4 h
//   P1: availability ≥ 0.9
//
//   day  M1 devices reporting (hours each)   counted (day ∪ day before)  critical faults       P1 (p1, p2)
//   A    m1 m2 m3 m4 (10 h)                  4: 4/4 = 1 met              0 / 40 h = 0 met      2 devices: not judged
//   B    m1 m2 m3 (10 h)                     4: 3/4 = 0.75 met           0 / 30 h = 0 met      "
//   C    m1 m2 (10 h)                        3: 2/3 = 0.667 missed       1 / 20 h = 50 missed  "
//   E    m1 m2 (12 h)                        2 < 3: not judged           1 / 24 h = 41.7 missed "
//
// Issues: X (critical, first seen C 03:00 on m1, acknowledged C 05:00: 2 h, in time); Y (critical, first
// seen E 02:00 on m2, acknowledged E 08:00: 6 h, late); W (a warning on B, never answered: below critical,
// not counted).
//
//   M1 availability: A met, B met, C missed, E not judged → judged 3, compliance 2/3, budget 2 − 1 = 1 left,
//     burn over 4 days (1/3)/0.5 = 0.667, over 3 days (B, C, E) (1/2)/0.5 = 1 → ok.
//   M1 fault rate critical: met, met, missed, missed → compliance 1/2, budget 2 − 2 = 0, E missed → breached;
//     burn 4 days (2/4)/0.5 = 1, 3 days (2/3)/0.5 = 1.333.
//   M1 response critical: A, B none, C met, E missed → judged 2, compliance 1/2, E missed → breached.
//   P1 availability: no day judged → insufficient data.

const T0 = floorDay(Date.now());
const A = T0 - 4 * DAY_MS;
const B = T0 - 3 * DAY_MS;
const C = T0 - 2 * DAY_MS;
const E = T0 - DAY_MS;

const FILE = `
defaults:
  objective: 0.5
  period: 4d
  lookback: 1d
  minDevices: 3
  minDeviceHours: 20
models:
  M1:
    availability: { target: 0.75 }
    faultRates:
      critical: { max: 20 }
    response:
      critical: { within: 4h }
  P1:
    availability: { target: 0.9 }
`;

const meta = (model: string, kind: string): DeviceMetaRecord => ({
  kind,
  model,
  firmware: "1.0",
  hardware: "h1",
  region: "eu",
  isp: "isp1",
  serial: "SN",
});
type Device = { id: string; meta: DeviceMetaRecord };
const m = [1, 2, 3, 4].map((i) => ({ id: `m${i}`, meta: meta("M1", "modem") }));
const p = [1, 2].map((i) => ({ id: `p${i}`, meta: meta("P1", "printer") }));
const [m1, m2] = m as [Device, Device];

const activity = (device: Device, day: number, hours: number): Point[] =>
  Array.from({ length: hours }, (_, h) =>
    activityPoint(deviceTags(device.id, device.meta), day + h * HOUR_MS, 60_000),
  );

let seq = 0;
function fault(device: Device, ts: number, code: string, severity: Severity): Point[] {
  seq += 1;
  const message = { channel: "fault" as const, deviceId: device.id, body: { ts, seq, code, severity } };
  return messagePoints(message, {
    meta: device.meta,
    receivedMs: ts + 1000,
    clockSkewFutureMs: 600_000,
    clockSkewPastMs: 60 * DAY_MS,
    discriminator: seq,
  }).records.map((r) => r.point);
}

const X = fingerprintId("modem/M1/LINK_DOWN");
const Y = fingerprintId("modem/M1/PSU_FAIL");
const acknowledged = (at: number): IssueEvent => ({
  type: "transition",
  to: "acknowledged",
  actor: "ana",
  at,
});

describe("service promises on a known fleet", () => {
  let db: Awaited<ReturnType<typeof testDatabase>>;
  let dataDir: string;
  let stack: FieldqHandle;
  const get = (path: string, token = "viewer-token-1") =>
    fetch(`${stack.apiUrl}${path}`, { headers: { authorization: `Bearer ${token}` } });

  beforeAll(async () => {
    db = await testDatabase("promises");
    const influx = createInflux(db);
    await ensureSchema(influx, db);
    const write = rollingUp(influx, createPointWriter(db));
    await write([
      ...m.flatMap((d) => activity(d, A, 10)),
      ...m.slice(0, 3).flatMap((d) => activity(d, B, 10)),
      ...m.slice(0, 2).flatMap((d) => activity(d, C, 10)),
      ...m.slice(0, 2).flatMap((d) => activity(d, E, 12)),
      ...p.flatMap((d) => [A, B, C, E].flatMap((day) => activity(d, day, 24))),
      ...fault(m1, B + 4 * HOUR_MS, "FAN_NOISE", "warning"),
      ...fault(m1, C + 3 * HOUR_MS, "LINK_DOWN", "critical"),
      ...fault(m2, E + 2 * HOUR_MS, "PSU_FAIL", "critical"),
    ]);
    await createPointWriter(db)([
      issueEventPoint(X, acknowledged(C + 5 * HOUR_MS), 1),
      issueEventPoint(Y, acknowledged(E + 8 * HOUR_MS), 1),
    ]);
    dataDir = await mkdtemp(join(tmpdir(), "fieldq-promises-"));
    const file = join(dataDir, "promises.yaml");
    await writeFile(file, FILE);
    stack = await startFieldq(
      testConfig(db, dataDir, { FIELDQ_PROMISES: file }),
      { logger: silentLogger },
      { broker: true, api: true },
    );
  });

  afterAll(async () => {
    await stack?.close();
    await db?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  const window = `from=${encodeURIComponent(iso(A))}&to=${encodeURIComponent(iso(T0))}`;

  async function promises(query = window): Promise<PromisesAnswer> {
    const response = await get(`/api/v1/promises?${query}`);
    expect(response.status).toBe(200);
    return PromisesAnswer.parse(await response.json());
  }

  const find = (answer: PromisesAnswer, model: string, name: string): PromiseReport => {
    const found = answer.models.find((x) => x.model === model)?.promises.find((x) => x.name === name);
    if (found === undefined) throw new Error(`no promise ${model}: ${name}`);
    return found;
  };

  test("a viewer reads each model's promises, judged as of `to`, a row per UTC day", async () => {
    const answer = await promises();
    expect(answer.asOf).toBe(iso(T0));
    expect(answer.message).toBeNull();
    expect(answer.models.map((x) => [x.model, x.promises.map((q) => q.name)])).toEqual([
      ["M1", ["availability", "fault rate critical", "response critical"]],
      ["P1", ["availability"]],
    ]);
    for (const model of answer.models) {
      for (const promise of model.promises) {
        expect(promise.days.map((d) => d.day)).toEqual([A, B, C, E].map(iso));
        expect(promise.period).toEqual({ from: iso(A), to: iso(T0) });
      }
    }
  });

  test("availability: online ÷ counted per day, budget and burn rate as worked out by hand", async () => {
    const a = find(await promises(), "M1", "availability");
    expect(a.days.map((d) => [d.state, d.sample.online, d.sample.devices])).toEqual([
      ["met", 4, 4],
      ["met", 3, 4],
      ["missed", 2, 3],
      ["insufficient", 2, 2],
    ]);
    expect(a.days[2]?.value).toBeCloseTo(2 / 3, 12);
    expect(a.days[2]?.met).toBe(false);
    expect(a.days[3]?.met).toBeNull();
    expect(a.judgedDays).toBe(3);
    expect(a.compliance).toBeCloseTo(2 / 3, 12);
    expect(a.budget).toEqual({ allowedDays: 2, spentDays: 1, leftDays: 1, leftShare: 0.5 });
    expect(a.burnRate.long.days).toBe(4);
    expect(a.burnRate.long.rate).toBeCloseTo(1 / 3 / 0.5, 12);
    expect(a.burnRate.short).toEqual({ days: 3, rate: 1 });
    expect(a.status).toBe("ok");
  });

  test("fault rate: critical faults per 1,000 device-hours per day; yesterday's miss is a breach", async () => {
    const f = find(await promises(), "M1", "fault rate critical");
    expect(f.days.map((d) => [d.state, d.sample.faults, d.sample.deviceHours])).toEqual([
      ["met", 0, 40],
      ["met", 0, 30],
      ["missed", 1, 20],
      ["missed", 1, 24],
    ]);
    expect(f.days[2]?.value).toBeCloseTo(50, 9);
    expect(f.days[3]?.value).toBeCloseTo(1000 / 24, 9);
    expect(f.compliance).toBe(0.5);
    expect(f.budget).toEqual({ allowedDays: 2, spentDays: 2, leftDays: 0, leftShare: 0 });
    expect(f.burnRate.long.rate).toBeCloseTo(1, 12);
    expect(f.burnRate.short.rate).toBeCloseTo(4 / 3, 12);
    expect(f.status).toBe("breached");
    expect(f.reason).toContain(`${iso(E).slice(0, 10)} out of promise`);
  });

  test("response: each new critical issue's first answer by a person against 4 hours", async () => {
    const r = find(await promises(), "M1", "response critical");
    expect(r.days.map((d) => [d.state, d.sample.issues, d.sample.late])).toEqual([
      ["none", 0, 0],
      ["none", 0, 0],
      ["met", 1, 0],
      ["missed", 1, 1],
    ]);
    expect(r.judgedDays).toBe(2);
    expect(r.compliance).toBe(0.5);
    expect(r.status).toBe("breached");
  });

  test("too few devices is insufficient data, not a verdict", async () => {
    const answer = await promises(`${window}&model=P1`);
    expect(answer.models.map((x) => x.model)).toEqual(["P1"]);
    const a = find(answer, "P1", "availability");
    expect(a.days.map((d) => d.state)).toEqual([
      "insufficient",
      "insufficient",
      "insufficient",
      "insufficient",
    ]);
    expect(a.days.map((d) => d.value)).toEqual([1, 1, 1, 1]);
    expect(a.status).toBe("insufficient_data");
    expect(a.compliance).toBeNull();
  });

  test("the dashboard's promises page shows each model's statuses in words, budgets and daily strips", async () => {
    const response = await fetch(`${stack.apiUrl}/promises`, {
      headers: { cookie: "fieldq_session=viewer-token-1" },
    });
    expect(response.status).toBe(200);
    const html = await response.text();
    expect(html).toContain('<h2 id="panel-promises-m1">M1</h2>');
    expect(html).toContain('<h2 id="panel-promises-p1">P1</h2>');
    // Two breached (fault rate, response), one insufficient (P1), one in promise (M1 availability).
    expect(html.match(/class="badge bad">breached</g)).toHaveLength(2);
    expect(html.match(/class="badge muted">insufficient data</g)).toHaveLength(1);
    expect(html.match(/class="badge good">in promise</g)).toHaveLength(1);
    // Each strip cell says its day and verdict in words, beside its sign.
    expect(html).toContain(
      `${iso(C).slice(0, 10)}: missed, 50 per 1,000 device-hours (1 faults in 20 device-hours)`,
    );
    expect(html).toContain(`${iso(C).slice(0, 10)}: missed, 67% (2 of 3 devices)`);
  });

  test("status() gives the alert engine the promises breached now, each with its model, name, kind and why", async () => {
    const read = createReadServices(createInflux(db), {
      write: createPointWriter(db),
      logger: silentLogger,
      files: { promises: join(dataDir, "promises.yaml") },
    });
    try {
      expect((await read.promises.load()).ok).toBe(true);
      const alarms = await read.promises.status(T0 + HOUR_MS);
      expect(alarms.map((a) => [a.model, a.promise, a.kind, a.state, a.budgetLeftDays])).toEqual([
        ["M1", "fault rate critical", "fault_rate", "breached", 0],
        ["M1", "response critical", "response", "breached", 1],
      ]);
      expect(alarms[0]?.detail).toBe(
        `${iso(E).slice(0, 10)} out of promise: 41.67 per 1,000 device-hours against 20 per 1,000 device-hours`,
      );
      expect(alarms[1]?.burnRate).toBeCloseTo(1, 12);
      // A day later nothing new was judged missed: E is no longer yesterday, and the budgets hold.
      expect(await read.promises.status(T0 + DAY_MS + HOUR_MS)).toEqual([]);
    } finally {
      read.close();
    }
  });

  test("a request without a token or with a bad parameter is refused with the one envelope", async () => {
    const anonymous = await fetch(`${stack.apiUrl}/api/v1/promises`);
    expect(anonymous.status).toBe(401);
    ErrorEnvelope.parse(await anonymous.json());
    const bad = await get("/api/v1/promises?from=yesterday");
    expect(bad.status).toBe(400);
    expect(ErrorEnvelope.parse(await bad.json()).error.code).toBe("BAD_REQUEST");
    const unknown = await get("/api/v1/promises?severity=critical");
    expect(unknown.status).toBe(400);
  });
});

describe("without a promises file", () => {
  test("the API answers an empty list saying how to promise something", async () => {
    const db = await testDatabase("promises_none");
    const dataDir = await mkdtemp(join(tmpdir(), "fieldq-promises-none-"));
    const api = await startFieldq(
      testConfig(db, dataDir),
      { logger: silentLogger },
      { broker: false, api: true },
    );
    try {
      const response = await fetch(`${api.apiUrl}/api/v1/promises`, {
        headers: { authorization: "Bearer viewer-token-1" },
      });
      expect(response.status).toBe(200);
      const answer = PromisesAnswer.parse(await response.json());
      expect(answer.models).toEqual([]);
      expect(answer.file).toBeNull();
      expect(answer.message).toContain("FIELDQ_PROMISES");
    } finally {
      await api.close();
      await db.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  test("a broken file stops the start with its file and line", async () => {
    const db = await testDatabase("promises_broken");
    const dataDir = await mkdtemp(join(tmpdir(), "fieldq-promises-broken-"));
    const file = join(dataDir, "promises.yaml");
    await writeFile(file, "models:\n  M1:\n    availability:\n      target: 2\n");
    try {
      await expect(
        startFieldq(
          testConfig(db, dataDir, { FIELDQ_PROMISES: file }),
          { logger: silentLogger },
          {
            broker: false,
            api: true,
          },
        ),
      ).rejects.toThrow(`${file}:4:15: models.M1.availability.target:`);
    } finally {
      await db.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
