import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import mqtt from "mqtt";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { deviceKey } from "../../contract/device-key.js";
import { DAY_MS, floorHour, HOUR_MS, MINUTE_MS } from "../../contract/time.js";
import { helloTopic, telemetryTopic } from "../../contract/topics.js";
import { decodeMessage } from "../../ingest/decode.js";
import { activityPoint, deviceTags, messagePoints, presencePoint } from "../../ingest/to-points.js";
import { createInfluxDeviceServices } from "../../services/devices.js";
import { startIngestBroker } from "../../stack/start-stack.js";
import { createInflux, createPointWriter, ensureSchema } from "../../storage/influx.js";
import { hashedSlot, type Point } from "../../storage/schema.js";
import { testDatabase } from "../support/influx.js";
import { TEST_SECRET, testConfig } from "../support/stack.js";

// An install upgraded from a version without device_state: its devices' raw points are in InfluxDB, the
// read model and the journal are not. The ingest fills device_state at start (ingest/device-state-backfill.ts)
// so a device silent since before the upgrade is still in the directory, and reported silent.

/** A pino logger whose lines the test reads. */
function capturingLogger() {
  const lines: Array<{ msg: string; [key: string]: unknown }> = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split("\n")) if (line !== "") lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: "debug" }, stream), lines };
}

/** A message received at atMs; tsMs: the device time it carries, when not atMs (an imported history). */
type Sent = { channel: string; body: unknown; atMs: number; tsMs?: number };

/** The points an older version stored for a device's messages, presence changes and hours. */
function olderVersionPoints(
  device: string,
  hello: Record<string, string>,
  sent: Sent[],
  presence: Array<{ state: "online" | "offline"; atMs: number }>,
): Point[] {
  const points: Point[] = [];
  let meta: ReturnType<typeof messagePoints>["meta"];
  const hours = new Map<number, Record<string, string>>();
  for (const [i, message] of [
    { channel: "hello", body: hello, atMs: sent[0]?.atMs ?? 0 },
    ...sent,
  ].entries()) {
    const decoded = decodeMessage(
      `fq/v1/${device}/${message.channel}`,
      Buffer.from(JSON.stringify(message.body)),
      65_536,
    );
    if (!decoded.ok) throw new Error(decoded.refusal.message);
    const mapped = messagePoints(decoded.message, {
      meta,
      receivedMs: message.channel === "hello" ? message.atMs - MINUTE_MS : message.atMs,
      clockSkewFutureMs: 600_000,
      clockSkewPastMs: 86_400_000,
      discriminator: i,
    });
    meta = mapped.meta ?? meta;
    points.push(...mapped.records.map((r) => r.point));
    const tsMs = "tsMs" in message && message.tsMs !== undefined ? message.tsMs : message.atMs;
    if (message.channel !== "hello") hours.set(floorHour(tsMs), deviceTags(device, meta));
  }
  let previous: number | undefined;
  for (const [hourMs, tags] of [...hours].sort(([a], [b]) => a - b)) {
    points.push(activityPoint(tags, hourMs, previous === undefined ? undefined : HOUR_MS));
    previous = hourMs;
  }
  for (const [i, p] of presence.entries())
    points.push(
      presencePoint(deviceTags(device, meta), { receivedMs: p.atMs, discriminator: i }, p.state, "broker"),
    );
  return points;
}

const telemetry = (atMs: number, seq: number, tsMs = atMs): Sent => ({
  channel: "telemetry",
  body: [{ ts: tsMs, seq, metrics: { snr: 30 } }],
  atMs,
  tsMs,
});

type StateRow = Record<string, unknown> & { time: { getNanoTime(): string } };

/** The point's time in ns: the device's slot. */
const slotOf = (row: StateRow) => Number(row.time.getNanoTime());

async function until<T>(read: () => Promise<T>, ok: (value: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value) || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("an upgrade from a version without device_state", () => {
  it("fills device_state for the devices InfluxDB knows, so the directory lists them as the data says", async () => {
    const db = await testDatabase("state_upgrade");
    const dataDir = await mkdtemp(join(tmpdir(), "fieldq-state-upgrade-"));
    const influx = createInflux(db);
    const now = Date.now();
    // modem-a: hourly reports until half an hour ago, then a disconnect: offline, not overdue.
    const aReports = Array.from({ length: 24 }, (_, k) =>
      telemetry(now - 30 * MINUTE_MS - (23 - k) * HOUR_MS, k),
    );
    // modem-b: hourly reports that stopped two days ago while its connection stayed up; an update on the way.
    const bStart = now - 2 * DAY_MS - 12 * HOUR_MS;
    const bReports = Array.from({ length: 12 }, (_, k) => telemetry(bStart + k * HOUR_MS, k));
    const update: Sent = {
      channel: "event",
      body: {
        ts: bStart + 5 * HOUR_MS + MINUTE_MS,
        seq: 100,
        type: "firmware_update",
        data: { from: "2.4.1", to: "2.5.0", result: "success" },
      },
      atMs: bStart + 5 * HOUR_MS + MINUTE_MS,
    };
    const hello = {
      kind: "modem",
      model: "FQ-M200",
      firmware: "2.4.1",
      hardware: "rev C",
      region: "eu-west",
    };
    // modem-i: ten hours of hourly history that stopped 13 h ago (within the past skew bound of a day),
    // imported a minute ago, then a disconnect: silent on its own clock right away.
    const iLastTs = now - 13 * HOUR_MS;
    const iReports = Array.from({ length: 10 }, (_, k) =>
      telemetry(now - MINUTE_MS + k * 100, k, iLastTs - (9 - k) * HOUR_MS),
    );
    const aFirst = aReports[0]?.atMs ?? 0;
    const aLast = aReports.at(-1)?.atMs ?? 0;
    const bLast = bReports.at(-1)?.atMs ?? 0;
    try {
      await ensureSchema(influx, db);
      await createPointWriter(db)([
        ...olderVersionPoints("modem-a", { ...hello, serial: "S-A" }, aReports, [
          { state: "online", atMs: aFirst - 2 * MINUTE_MS },
          { state: "offline", atMs: aLast + 10 * MINUTE_MS },
        ]),
        ...olderVersionPoints(
          "modem-b",
          { ...hello, serial: "S-B" },
          [...bReports.slice(0, 6), update, ...bReports.slice(6)],
          [{ state: "online", atMs: bStart - 2 * MINUTE_MS }],
        ),
        ...olderVersionPoints("modem-i", { ...hello, serial: "S-I" }, iReports, [
          { state: "online", atMs: now - 2 * MINUTE_MS },
          { state: "offline", atMs: now - 30_000 },
        ]),
      ]);

      const config = testConfig(db, dataDir);
      const first = capturingLogger();
      let stack = await startIngestBroker(config, { logger: first.logger });
      let rows: StateRow[];
      try {
        const states = async () => [...(await influx.query<StateRow>(`SELECT * FROM "long"."device_state"`))];
        rows = await until(states, (r) => r.length === 3);
        const a = rows.find((r) => r.device === "modem-a");
        const b = rows.find((r) => r.device === "modem-b");
        expect(a).toMatchObject({
          model: "FQ-M200",
          firmware: "2.4.1",
          serial: "S-A",
          region: "eu-west",
          last_report_ms: aLast,
          last_report_device_ms: aLast,
          last_seen_ms: aLast + 10 * MINUTE_MS,
          presence: "offline",
          presence_ms: aLast + 10 * MINUTE_MS,
          presence_source: "broker",
          gap_median_ms: HOUR_MS,
          gap_samples: 23,
        });
        expect(b).toMatchObject({
          firmware: "2.5.0",
          serial: "S-B",
          last_report_ms: bLast,
          presence: "online",
          presence_ms: bStart - 2 * MINUTE_MS,
          gap_median_ms: HOUR_MS,
          gap_samples: 11,
        });
        expect(rows.find((r) => r.device === "modem-i")).toMatchObject({
          last_report_ms: iReports.at(-1)?.atMs,
          last_report_device_ms: iLastTs,
          presence: "offline",
        });
        expect(first.lines.map((l) => l.msg)).toContain("filling device_state for 3 devices");

        const read = createInfluxDeviceServices(influx, { directory: { refreshEveryMs: 0 } });
        try {
          const list = await read.devices.listDevices({ limit: 10, offset: 0 });
          expect(list.items.map((d) => [d.id, d.status])).toEqual([
            ["modem-a", "offline"],
            ["modem-b", "silent"],
            ["modem-i", "silent"],
          ]);
          const silent = await read.devices.listDevices({ status: "silent", limit: 10, offset: 0 });
          expect(silent.items.map((d) => d.id)).toEqual(["modem-b", "modem-i"]);
          expect(await read.devices.getDevice("modem-b")).toBeDefined();
        } finally {
          read.close();
        }
      } finally {
        await stack.close();
      }

      // A restart finds every device in device_state and writes nothing.
      const second = capturingLogger();
      stack = await startIngestBroker(config, { logger: second.logger });
      try {
        await until(
          async () => second.lines.map((l) => l.msg),
          (msgs) => msgs.includes("device_state has a point for every device"),
        );
        expect(second.lines.map((l) => l.msg)).toContain("device_state has a point for every device");
        expect(second.lines.map((l) => l.msg)).not.toContain("filling device_state for 3 devices");
        expect(stack.journal.backlog.entries).toBe(0);
        const after = [...(await influx.query<StateRow>(`SELECT * FROM "long"."device_state"`))];
        expect(after.map((r) => r.updated_ms)).toEqual(rows.map((r) => r.updated_ms));
      } finally {
        await stack.close();
      }

      // The data folder is lost: the journal no longer knows the devices' slots. A device it sees again
      // keeps its point, and a new device takes a slot no point holds.
      await rm(join(dataDir, "journal"), { recursive: true, force: true });
      const third = capturingLogger();
      stack = await startIngestBroker(config, { logger: third.logger });
      try {
        await until(
          async () => third.lines.map((l) => l.msg),
          (msgs) => msgs.includes("device_state has a point for every device"),
        );
        expect(third.lines.find((l) => l.msg.startsWith("the journal had no record"))).toMatchObject({
          devices: 3,
        });
        const slots = new Map(rows.map((r) => [r.device, slotOf(r as StateRow)]));
        for (const id of ["modem-a", "modem-c"]) {
          const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${stack.mqttPort}`, {
            clientId: id,
            username: id,
            password: deviceKey(TEST_SECRET, id),
            protocolVersion: 4,
            reconnectPeriod: 0,
          });
          if (id === "modem-c")
            await client.publishAsync(helloTopic(id), JSON.stringify({ ...hello, serial: "S-C" }), {
              qos: 1,
            });
          await client.publishAsync(
            telemetryTopic(id),
            JSON.stringify([{ ts: Date.now(), seq: 1, metrics: { snr: 31 } }]),
            { qos: 1 },
          );
          await client.endAsync();
        }
        const states = async () =>
          [...(await influx.query<StateRow>(`SELECT * FROM "long"."device_state"`))] as StateRow[];
        const after = await until(states, (r) =>
          r.some((row) => row.device === "modem-c" && row.presence === "offline"),
        );
        expect(new Map(after.map((r) => [r.device, slotOf(r)]))).toEqual(
          new Map([
            ["modem-a", slots.get("modem-a")],
            ["modem-b", slots.get("modem-b")],
            ["modem-i", slots.get("modem-i")],
            ["modem-c", hashedSlot("modem-c")],
          ]),
        );
        // modem-a's fresh report is at its old slot, with the hello the lost journal had.
        const a = after.find((r) => r.device === "modem-a");
        expect(a).toMatchObject({ model: "FQ-M200", serial: "S-A" });
        expect(Number(a?.last_report_ms)).toBeGreaterThan(aLast);
      } finally {
        await stack.close();
      }
    } finally {
      await db.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
