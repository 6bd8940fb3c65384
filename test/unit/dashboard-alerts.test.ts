import { describe, expect, it } from "vitest";
import { createApp } from "../../api/app.js";
import type { Role, TokenHolder } from "../../config/env.js";
import { mountDashboard } from "../../dashboard/mount.js";
import { subjectHref } from "../../dashboard/pages/alerts.js";
import { SESSION_COOKIE } from "../../dashboard/session.js";
import { silentLogger } from "../../observe/logger.js";
import { createMetrics } from "../../observe/metrics.js";
import { createAlertServiceOver } from "../../services/alerts.js";
import type { AlertLogEntry } from "../../storage/alert-log.js";
import { sampleNotice } from "../support/alert-notice.js";
import { memoryDeviceServices } from "../support/device-services.js";

// The alerts page over the API and an in-memory alert log: what a person sees and what Acknowledge does.

const NOW = Date.parse("2026-01-05T12:00:00.000Z");
const VIEWER = "viewer-token-0001";
const OPERATOR = "operator-token-0001";
const TOKENS = new Map<string, Role | TokenHolder>([
  [VIEWER, { role: "viewer", name: "vic" }],
  [OPERATOR, { role: "operator", name: "ana" }],
]);
const ORIGIN = "http://fieldq.test";

const open = sampleNotice({ title: "New critical issue on 12 devices" });
const firmware = sampleNotice({
  alertId: "firmware_regression~FQ-Modem 7590~7.57",
  kind: "firmware_regression",
  severity: "warning",
  subject: "FQ-Modem 7590 firmware 7.57",
  title: "Firmware 7.57 faults more than 7.56",
  refs: { model: "FQ-Modem 7590", firmware: "7.57" },
  at: "2026-01-02T00:00:00.000Z",
});

function dashboard() {
  const log: AlertLogEntry[] = [
    {
      type: "notice",
      alertId: open.alertId,
      atMs: Date.parse(open.at),
      notice: open,
      targets: ["webhook", "pager"],
    },
    {
      type: "delivery",
      alertId: open.alertId,
      atMs: Date.parse(open.at) + 1000,
      idempotencyKey: open.idempotencyKey,
      target: "webhook",
      outcome: "delivered",
      attempt: 1,
      status: 200,
      error: null,
      nextTryMs: null,
    },
    {
      type: "delivery",
      alertId: open.alertId,
      atMs: Date.parse(open.at) + 1000,
      idempotencyKey: open.idempotencyKey,
      target: "pager",
      outcome: "failed",
      attempt: 3,
      status: 503,
      error: "HTTP 503",
      nextTryMs: Date.parse(open.at) + 9000,
    },
    {
      type: "notice",
      alertId: firmware.alertId,
      atMs: Date.parse(firmware.at),
      notice: firmware,
      targets: [],
    },
  ];
  const alerts = createAlertServiceOver(
    {
      read: async (filter) =>
        log.filter(
          (e) =>
            (filter.alertIds === undefined || filter.alertIds.includes(e.alertId)) &&
            (filter.types === undefined || filter.types.includes(e.type)),
        ),
      acknowledge: async (entry) => {
        log.push(entry);
      },
    },
    () => NOW,
  );
  const app = createApp({
    ...memoryDeviceServices({}, { now: () => NOW }),
    alerts,
    tokens: TOKENS,
    logger: silentLogger,
    metrics: createMetrics(),
    now: () => NOW,
  });
  mountDashboard(app, { tokens: TOKENS, logger: silentLogger, now: () => NOW });
  const request = (path: string, token: string, init: RequestInit = {}) =>
    app.request(`${ORIGIN}${path}`, {
      ...init,
      headers: { cookie: `${SESSION_COOKIE}=${token}`, origin: ORIGIN, ...(init.headers ?? {}) },
    });
  return { request, log };
}

describe("the alerts page", () => {
  it("shows each open alert with its subject linked, its level and its delivery per target", async () => {
    const { request } = dashboard();
    const response = await request("/alerts", VIEWER);
    expect(response.status).toBe(200);
    const html = await response.text();
    expect(html).toContain("New critical issue on 12 devices");
    expect(html).toContain('href="/issues/3f2a91c0"');
    expect(html).toContain('href="/firmware?model=FQ-Modem+7590&amp;b=7.57"');
    expect(html).toMatch(/webhook<\/span> <span class="badge good">delivered/);
    expect(html).toMatch(/pager<\/span> <span class="badge warn">failing/);
    expect(html).toContain("3 tries, HTTP 503");
    // A viewer sees no Acknowledge button.
    expect(html).not.toContain(">Acknowledge</button>");
  });

  it("gives an operator an Acknowledge form that records their name and note", async () => {
    const { request, log } = dashboard();
    const page = await (await request("/alerts", OPERATOR)).text();
    expect(page.match(/>Acknowledge<\/button>/g)).toHaveLength(2);
    const response = await request(`/alerts/${encodeURIComponent(open.alertId)}/acknowledge`, OPERATOR, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ note: "on it" }).toString(),
    });
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toBe("/alerts");
    expect(log.at(-1)).toMatchObject({
      type: "acknowledged",
      alertId: open.alertId,
      by: "ana",
      note: "on it",
    });
    const after = await (await request("/alerts", OPERATOR)).text();
    expect(after).toContain("by ana");
    expect(after).toContain("on it");
    expect(after.match(/>Acknowledge<\/button>/g)).toHaveLength(1);
  });

  it("refuses a viewer's acknowledgement and records nothing", async () => {
    const { request, log } = dashboard();
    const before = log.length;
    const response = await request(`/alerts/${encodeURIComponent(open.alertId)}/acknowledge`, VIEWER, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "note=x",
    });
    expect(response.status).toBe(403);
    expect(log).toHaveLength(before);
  });

  it.each([
    [{ issue: "abc" }, "/issues/abc"],
    [{ model: "FQ-Print Mk3", firmware: "3.14.0" }, "/firmware?model=FQ-Print+Mk3&b=3.14.0"],
    [{ device: "printer-0001" }, "/devices/printer-0001"],
    [{ model: "FQ-Modem 7590", promise: "availability" }, "/promises?model=FQ-Modem+7590"],
    [{}, null],
  ])("links the subject %j to %s", (refs, href) => {
    expect(subjectHref(refs)).toBe(href);
  });
});
