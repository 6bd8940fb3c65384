import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fingerprintId } from "../../analytics/fingerprint.js";
import { FeedbackPage, FeedbackRecord, FeedbackSummary } from "../../contract/api/feedback.js";
import { ReviewReport } from "../../contract/api/reports.js";
import { deviceKey } from "../../contract/device-key.js";
import { DAY_MS, HOUR_MS } from "../../contract/time.js";
import { eventTopic, faultTopic, helloTopic, telemetryTopic } from "../../contract/topics.js";
import { SESSION_COOKIE } from "../../dashboard/session.js";
import { silentLogger } from "../../observe/logger.js";
import { type FieldqHandle, startFieldq } from "../../stack/start-stack.js";
import { createInflux, createPointWriter } from "../../storage/influx.js";
import { queryGroups } from "../../storage/influxql.js";
import { issueEventPoint } from "../../storage/issue-queries.js";
import { testDatabase } from "../support/influx.js";
import { TEST_SECRET, testConfig } from "../support/stack.js";

// A known fleet sent through the real broker over TCP into a test database, then the review read through
// the API and through `fieldq report`; every figure is worked out by hand below.
//
// Four hours H0..H3 (two days back), every device reports once an hour: 4 device-hours each.
//   m1-a, m1-b: modem M1 on 1.0   (8 device-hours)  faults DSL_RESYNC: m1-a 5, m1-b 3; m1-a rates 8/10
//   m1-c:       modem M1 on 1.1   (4 device-hours)  faults LOS (critical): 2;        m1-c rates 4/10
//   m2-a:       modem M2 on 2.0   (4 device-hours)  faults SYNC: 1
// Pareto: 11 occurrences; M1/DSL_RESYNC 8 (8/11, cum 8/11), M1/LOS 2 (cum 10/11), M2/SYNC 1 (cum 1).
// Fault rates per 1,000 device-hours: 8/8 → 1000, 2/4 → 500, 1/4 → 250.

const run = promisify(execFile);
const VIEWER = "viewer-token-1";
const OPERATOR = "operator-token-1";
const H0 = Math.floor(Date.now() / HOUR_MS) * HOUR_MS - 2 * DAY_MS;

const DEVICES = [
  { id: "m1-a", model: "M1", firmware: "1.0", faults: 5, code: "DSL_RESYNC", severity: "error", rating: 8 },
  { id: "m1-b", model: "M1", firmware: "1.0", faults: 3, code: "DSL_RESYNC", severity: "error" },
  { id: "m1-c", model: "M1", firmware: "1.1", faults: 2, code: "LOS", severity: "critical", rating: 4 },
  { id: "m2-a", model: "M2", firmware: "2.0", faults: 1, code: "SYNC", severity: "warning" },
] as const;

const RESYNC = fingerprintId("modem/M1/DSL_RESYNC");
const LOS = fingerprintId("modem/M1/LOS");
const SYNC = fingerprintId("modem/M2/SYNC");

let stack: FieldqHandle;
let db: Awaited<ReturnType<typeof testDatabase>>;
let dataDir: string;
let config: ReturnType<typeof testConfig>;
const clients: mqtt.MqttClient[] = [];

const call = (path: string, token: string, init: RequestInit = {}) =>
  fetch(`${stack.apiUrl}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...init.headers },
  });
const getJson = async (path: string) => {
  const response = await call(path, VIEWER);
  expect(response.status).toBe(200);
  return response.json();
};

// The window of the review: from a day before H0 to the hour after now (the close below happens now).
const FROM = new Date(H0 - DAY_MS).toISOString();
const TO = () => new Date(Math.floor(Date.now() / HOUR_MS) * HOUR_MS + HOUR_MS).toISOString();
const reviewPath = (extra = "") => `/api/v1/reports/review?from=${FROM}&to=${TO()}${extra}`;

beforeAll(async () => {
  db = await testDatabase("review");
  dataDir = await mkdtemp(join(tmpdir(), "fieldq-review-"));
  // M1 promises at most 300 error faults per 1,000 device-hours a day; it ran 8 in 12 device-hours (667).
  const promises = join(dataDir, "promises.yaml");
  await writeFile(
    promises,
    "models:\n  M1:\n    faultRates:\n      error: { max: 300, minDeviceHours: 1 }\n",
  );
  config = testConfig(db, dataDir, { FIELDQ_PROMISES: promises });
  stack = await startFieldq(config, { logger: silentLogger }, { broker: true, api: true });
  let seq = 0;
  for (const d of DEVICES) {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${stack.mqttPort}`, {
      clientId: d.id,
      username: d.id,
      password: deviceKey(TEST_SECRET, d.id),
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    clients.push(client);
    const hello = {
      kind: "modem",
      model: d.model,
      firmware: d.firmware,
      hardware: "h1",
      serial: `SN-${d.id}`,
    };
    await client.publishAsync(helloTopic(d.id), JSON.stringify(hello), { qos: 1, retain: true });
    for (let h = 0; h < 4; h++) {
      const ts = H0 + h * HOUR_MS + 60_000;
      await client.publishAsync(
        telemetryTopic(d.id),
        JSON.stringify({ ts, seq: ++seq, metrics: { snr: 30 } }),
        {
          qos: 1,
        },
      );
    }
    for (let f = 0; f < d.faults; f++) {
      const ts = H0 + (f % 4) * HOUR_MS + 120_000 + f;
      const fault = { ts, seq: ++seq, code: d.code, severity: d.severity };
      await client.publishAsync(faultTopic(d.id), JSON.stringify(fault), { qos: 1 });
    }
    if ("rating" in d) {
      const event = { ts: H0 + 180_000, seq: ++seq, type: "feedback", data: { rating: d.rating } };
      await client.publishAsync(eventTopic(d.id), JSON.stringify(event), { qos: 1 });
    }
  }
  // LOS acknowledged 20 days before the window's end and left there: the one overdue action.
  await createPointWriter(db)([
    issueEventPoint(
      LOS,
      { type: "transition", to: "acknowledged", actor: "operator:ana", at: Date.parse(TO()) - 20 * DAY_MS },
      7,
    ),
  ]);
  // Wait for the rollups: the review's Pareto sees all 11 occurrences and the three cohorts' exposure.
  const seen = async () => {
    const r = ReviewReport.parse(await getJson(reviewPath("&format=json")));
    return [r.pareto.occurrences, r.feedback.groups.reduce((s, g) => s + g.exposureHours, 0)];
  };
  const deadline = Date.now() + 30_000;
  let last = await seen();
  while ((last[0] !== 11 || last[1] !== 16) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    last = await seen();
  }
  expect(last).toEqual([11, 16]);
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
  await stack?.close();
  await db?.drop();
  await rm(dataDir, { recursive: true, force: true });
});

describe("customer feedback", () => {
  it("refuses a viewer (403), an unknown device (404) and a category outside the list (400)", async () => {
    const body = { device: "m1-a", category: "complaint", text: "drops every evening" };
    expect(
      (await call("/api/v1/feedback", VIEWER, { method: "POST", body: JSON.stringify(body) })).status,
    ).toBe(403);
    const unknown = await call("/api/v1/feedback", OPERATOR, {
      method: "POST",
      body: JSON.stringify({ ...body, device: "nobody-0001" }),
    });
    expect(unknown.status).toBe(404);
    const bad = await call("/api/v1/feedback", OPERATOR, {
      method: "POST",
      body: JSON.stringify({ ...body, category: "rant", rating: 9 }),
    });
    expect(bad.status).toBe(400);
    const message = ((await bad.json()) as { error: { message: string } }).error.message;
    expect(message).toContain('body field "category"');
    expect(message).toContain('body field "rating"');
    // The reads refuse what they do not take, with the field named.
    const badList = await call("/api/v1/feedback?category=rant", VIEWER);
    expect(badList.status).toBe(400);
    const listError = (await badList.json()) as { error: { message: string } };
    expect(listError.error.message).toContain('query parameter "category"');
    const badWindow = await call(`/api/v1/feedback/summary?from=${TO()}&to=${FROM}`, VIEWER);
    expect(badWindow.status).toBe(400);
    expect((await call("/api/v1/feedback/summary", "not-a-token")).status).toBe(401);
    // None of them recorded anything.
    expect(FeedbackPage.parse(await getJson("/api/v1/feedback")).total).toBe(0);
  });

  it("records the support desk's feedback tagged with the device's cohort, and sums it beside the fault rates", async () => {
    const posts = [
      { device: "m1-a", category: "complaint", text: 'drops every evening <b>"loud"</b>', rating: 2 },
      { device: "m1-b", category: "praise", text: "works well", rating: 4 },
      { device: "m1-c", category: "return", text: "sent back" },
    ];
    for (const body of posts) {
      const response = await call("/api/v1/feedback", OPERATOR, {
        method: "POST",
        body: JSON.stringify(body),
      });
      expect(response.status).toBe(201);
      const record = FeedbackRecord.parse(await response.json());
      expect(record).toMatchObject({
        device: body.device,
        kind: "modem",
        model: "M1",
        category: body.category,
        rating: body.rating ?? null,
        actor: expect.stringMatching(/^operator/),
      });
    }
    const listed = FeedbackPage.parse(await getJson("/api/v1/feedback?model=M1&firmware=1.0"));
    expect(listed.items.map((r) => r.device).sort()).toEqual(["m1-a", "m1-b"]);

    const summary = FeedbackSummary.parse(await getJson(`/api/v1/feedback/summary?from=${FROM}&to=${TO()}`));
    const row = (model: string, firmware: string) =>
      summary.groups.find((g) => g.model === model && g.firmware === firmware);
    expect(row("M1", "1.0")).toEqual({
      model: "M1",
      firmware: "1.0",
      feedback: {
        total: 2,
        byCategory: { complaint: 1, return: 0, question: 0, suggestion: 0, praise: 1 },
        ratings: 2,
        meanRating: 3,
        per1000Devices: 1000,
      },
      devices: 2,
      exposureHours: 8,
      faults: 8,
      faultsPer1000h: 1000,
      deviceRatings: { count: 1, mean: 8 },
    });
    expect(row("M1", "1.1")).toMatchObject({
      feedback: { total: 1, byCategory: { return: 1 }, ratings: 0, meanRating: null, per1000Devices: 1000 },
      devices: 1,
      exposureHours: 4,
      faultsPer1000h: 500,
      deviceRatings: { count: 1, mean: 4 },
    });
    expect(row("M2", "2.0")).toMatchObject({ feedback: { total: 0 }, exposureHours: 4, faultsPer1000h: 250 });
  });
});

describe("the management review", () => {
  it("answers the hand-computed figures: Pareto, issues opened and closed, overdue actions, feedback", async () => {
    // Closed by an operator now: one closing in the window.
    const close = await call(`/api/v1/issues/${SYNC}/transitions`, OPERATOR, {
      method: "POST",
      body: JSON.stringify({ to: "closed", reason: "one-off line fault" }),
    });
    expect(close.status).toBe(200);

    const report = ReviewReport.parse(await getJson(reviewPath("&format=json")));
    expect(report.pareto.issues).toBe(3);
    expect(
      report.pareto.rows.map((r) => [
        r.issue,
        r.occurrences,
        r.affectedDevices,
        r.share,
        r.cumulativeShare,
        r.vitalFew,
      ]),
    ).toEqual([
      [RESYNC, 8, 2, 8 / 11, 8 / 11, true],
      [LOS, 2, 1, 2 / 11, 10 / 11, true],
      [SYNC, 1, 1, 1 / 11, 1, false],
    ]);
    expect(report.issues).toMatchObject({ opened: 3, closed: 1, verifiedEffective: 0, reopened: 0 });
    expect(report.issues.rows.find((r) => r.event === "closed")).toMatchObject({
      issue: SYNC,
      key: "modem/M2/SYNC",
      detail: "one-off line fault",
      actor: expect.stringMatching(/^operator/),
    });
    expect(report.overdue.openActions).toBe(1);
    expect(report.overdue.rows.map((r) => [r.issue, r.status, r.daysWithoutProgress])).toEqual([
      [LOS, "acknowledged", 20],
    ]);
    // The window's days with M1 exposure are judged (one, or two when H0..H3 cross midnight), none met.
    expect(report.promises.available).toBe(true);
    expect(report.promises.rows).toHaveLength(1);
    expect(report.promises.rows[0]).toMatchObject({
      model: "M1",
      compliant: false,
      actual: expect.stringMatching(/^0 of [12] days met \(0%\)$/),
      sample: expect.stringContaining("8 faults in 12 device-hours"),
    });
    // Four devices are too few for any verdict.
    expect(report.firmware.rows).toEqual([]);
    expect(report.feedback.records).toBe(3);
    expect(report.feedback.latest.map((f) => f.device).sort()).toEqual(["m1-a", "m1-b", "m1-c"]);
  });

  it("answers a printable, self-contained HTML document with what people wrote kept as text", async () => {
    const response = await call(reviewPath(), VIEWER);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/html/);
    const html = await response.text();
    expect(html).toContain("modem/M1/DSL_RESYNC");
    expect(html).toContain("11 fault occurrences of 3 issues");
    expect(html).toContain("drops every evening &lt;b&gt;&quot;loud&quot;&lt;/b&gt;");
    expect(html).not.toContain("<script");
    expect(html).toContain("format=csv&amp;table=pareto");
  });

  it("writes nothing while it answers (feedback list and summary, the review in every format)", async () => {
    const influx = createInflux(config.influx);
    const counts = async () =>
      (
        await queryGroups(influx, [
          'SELECT count("id") FROM "long"."feedback"',
          'SELECT count("event") FROM "long"."issue_event"',
        ])
      )
        .flat()
        .map((g) => g.rows[0]?.count ?? 0);
    const before = await counts();
    // Three records posted above; LOS's acknowledgement and SYNC's closing.
    expect(before).toEqual([3, 2]);
    for (const path of [
      "/api/v1/feedback",
      `/api/v1/feedback/summary?from=${FROM}`,
      reviewPath(),
      reviewPath("&format=json"),
      reviewPath("&format=csv&table=feedback"),
    ]) {
      expect((await call(path, VIEWER)).status).toBe(200);
    }
    expect(await counts()).toEqual(before);
  });

  it("answers a table's CSV, and refuses a CSV without a table", async () => {
    const response = await call(reviewPath("&format=csv&table=pareto"), VIEWER);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/csv/);
    const lines = (await response.text()).trimEnd().split("\r\n");
    expect(lines).toHaveLength(4);
    expect(lines[1]).toContain(`,1,${RESYNC},modem/M1/DSL_RESYNC,`);
    expect((await call(reviewPath("&format=csv"), VIEWER)).status).toBe(400);
    expect((await fetch(`${stack.apiUrl}${reviewPath()}`)).status).toBe(401);
  });

  it("is written by `fieldq report` straight from InfluxDB: the HTML and a CSV per table", async () => {
    const out = await mkdtemp(join(tmpdir(), "fieldq-report-"));
    try {
      const { stdout, stderr } = await run(
        "node",
        [
          "--import",
          "tsx",
          "cli/fieldq.ts",
          "report",
          "--from",
          FROM,
          "--to",
          TO(),
          "--out",
          join(out, "review.html"),
          "--csv",
          join(out, "csv"),
        ],
        {
          env: {
            ...process.env,
            FIELDQ_INFLUX_URL: config.influx.url,
            FIELDQ_INFLUX_DB: config.influx.database,
            FIELDQ_DEVICE_SECRET: TEST_SECRET,
            FIELDQ_LOG_LEVEL: "silent",
            FIELDQ_PROMISES: config.promises.file,
          },
        },
      );
      expect(stderr).toContain("report: built in");
      expect(stdout.trim().split("\n")).toEqual([
        join(out, "review.html"),
        ...["pareto", "promises", "issues", "overdue", "firmware", "feedback"].map((t) =>
          join(out, "csv", `${t}.csv`),
        ),
      ]);
      expect(await readFile(join(out, "review.html"), "utf8")).toContain("11 fault occurrences of 3 issues");
      const viaApi = await (await call(reviewPath("&format=csv&table=feedback"), VIEWER)).text();
      expect(await readFile(join(out, "csv", "feedback.csv"), "utf8")).toBe(viaApi);
      await expect(
        run("node", ["--import", "tsx", "cli/fieldq.ts", "report", "--from", "yesterday"], {
          env: process.env,
        }),
      ).rejects.toMatchObject({ code: 2 });
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("the dashboard", () => {
  const page = (path: string, token: string, init: RequestInit = {}) =>
    fetch(`${stack.apiUrl}${path}`, {
      redirect: "manual",
      ...init,
      headers: { cookie: `${SESSION_COOKIE}=${token}`, ...init.headers },
    });

  it("shows the review's window, links the printable report and each table's CSV, and serves them", async () => {
    const review = await page("/review", VIEWER);
    expect(review.status).toBe(200);
    const html = await review.text();
    expect(html).toContain("Open the printable report");
    expect(html).toMatch(/href="\/review\/report\?from=[^"]+&amp;format=csv&amp;table=overdue"/);
    const link = /href="(\/review\/report\?from=[^"&]+&amp;to=[^"&]+)"/
      .exec(html)?.[1]
      ?.replaceAll("&amp;", "&");
    expect(link).toBeDefined();
    const report = await page(link ?? "", VIEWER);
    expect(report.status).toBe(200);
    expect(report.headers.get("content-type")).toMatch(/^text\/html/);
    expect(await report.text()).toContain("<h1>Management review</h1>");
    const csv = await page(`/review/report?from=${FROM}&to=${TO()}&format=csv&table=pareto`, VIEWER);
    expect(csv.headers.get("content-type")).toMatch(/^text\/csv/);
    expect((await csv.text()).split("\r\n")[1]).toContain("modem/M1/DSL_RESYNC");
  });

  it("lets an operator record feedback from the device page, not a viewer", async () => {
    const form = (token: string) =>
      page("/devices/m2-a/feedback", token, {
        method: "POST",
        headers: { origin: stack.apiUrl ?? "", "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          category: "question",
          rating: "3",
          text: "how do I <reset> it?",
        }).toString(),
      });
    expect((await form(VIEWER)).status).toBe(403);
    const done = await form(OPERATOR);
    expect(done.status).toBe(303);
    expect(done.headers.get("location")).toBe("/devices/m2-a#feedback");
    const device = await (await page("/devices/m2-a", VIEWER)).text();
    expect(device).toContain("how do I &lt;reset&gt; it?");
    expect(device).not.toContain('action="/devices/m2-a/feedback"');
    const listed = FeedbackPage.parse(await getJson("/api/v1/feedback?device=m2-a"));
    expect(listed.items.map((r) => [r.category, r.rating])).toEqual([["question", 3]]);
  });

  it("puts feedback beside fault rates on the firmware page", async () => {
    const html = await (await page("/firmware?window=7", VIEWER)).text();
    expect(html).toContain("Feedback beside fault rates");
    expect(html).toMatch(/<td>M1<\/td><td>1\.0<\/td><td class="num">2<\/td>/);
  });
});
