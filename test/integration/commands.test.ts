import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { BatchView, BulkCommandAnswer, CommandList, CommandView } from "../../contract/api/commands.js";
import { deviceKey } from "../../contract/device-key.js";
import { Command, type CommandResult } from "../../contract/messages.js";
import { commandFilter, commandResultTopic, helloTopic, parseDeviceTopic } from "../../contract/topics.js";
import { runSim } from "../../device-sim/run-sim.js";
import { plainPlan } from "../../device-sim/schedule.js";
import { silentLogger } from "../../observe/logger.js";
import { type FieldqHandle, startFieldq } from "../../stack/start-stack.js";
import { httpRequest } from "../support/app-request.js";
import { testDatabase } from "../support/influx.js";
import { TEST_SECRET, testConfig } from "../support/stack.js";

// Remote commands through the real stack: the API queues, the broker's process sends QoS 1 on the device's
// command topic, the device (an MQTT client here, as the device contract says) acknowledges and answers, the
// ingest stores the answer, and the API tells the status.

const RATE = 5;

type Received = { commandId: string; command: Command; atMs: number };

/** A device: says hello, and, when `listen`, subscribes to its commands at QoS 1 and keeps what it gets. */
class TestDevice {
  readonly received: Received[] = [];
  client: mqtt.MqttClient | undefined;
  #seq = 0;
  /** Answers every command at once unless told to hold. */
  hold = false;

  constructor(
    readonly id: string,
    readonly model: string,
    readonly firmware: string,
    readonly port: () => number,
  ) {}

  /** subscribe false: a persistent session that holds its subscription already. */
  async connect(
    listen: boolean,
    session: { clean: boolean; subscribe: boolean } = { clean: true, subscribe: true },
  ) {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${this.port()}`, {
      clientId: this.id,
      username: this.id,
      password: deviceKey(TEST_SECRET, this.id),
      protocolVersion: 4,
      reconnectPeriod: 0,
      clean: session.clean,
    });
    this.client = client;
    const hello = {
      kind: "modem",
      model: this.model,
      firmware: this.firmware,
      hardware: "A",
      serial: `SN-${this.id}`,
    };
    // Listening before anything else: a persistent session's command may come right after the CONNACK.
    client.on("message", (topic, payload) => {
      const parsed = parseDeviceTopic(topic);
      if (parsed?.channel !== "cmd") return;
      const command = Command.parse(JSON.parse(payload.toString("utf8")));
      this.received.push({ commandId: parsed.commandId, command, atMs: Date.now() });
      // A test that ends while the answer is in flight closes the client under it: nothing to report then.
      if (!this.hold) this.answer(parsed.commandId, true, `${command.type} done`).catch(() => {});
    });
    await client.publishAsync(helloTopic(this.id), JSON.stringify(hello), { qos: 1, retain: true });
    if (!listen) return;
    if (!session.subscribe) return;
    const [grant] = await client.subscribeAsync(commandFilter(this.id), { qos: 1 });
    expect(grant?.qos).toBe(1);
  }

  /** How far the device's clock lags fieldq's. */
  lagMs = 0;

  async answer(commandId: string, ok: boolean, message: string) {
    this.#seq += 1;
    const result: CommandResult = { ts: Date.now() - this.lagMs, seq: this.#seq, ok, message };
    await this.client?.publishAsync(commandResultTopic(this.id, commandId), JSON.stringify(result), {
      qos: 1,
    });
  }

  async disconnect() {
    await this.client?.endAsync();
    this.client = undefined;
  }
}

let stack: FieldqHandle;
let closeAll: () => Promise<void>;
const devices: TestDevice[] = [];

const device = (id: string, model = "FQ-Cmd 1", firmware = "1.0") => {
  const d = new TestDevice(id, model, firmware, () => stack.mqttPort ?? 0);
  devices.push(d);
  return d;
};

const api = (method: "GET" | "POST", path: string, token: string, body?: unknown) =>
  httpRequest(stack.apiUrl ?? "", method, path, token, body);
const OPERATOR = "operator-token-1";
const VIEWER = "viewer-token-1";

/** Sends a command once the API's directory knows the device (its hello reaches InfluxDB first). */
async function send(id: string, body: unknown): Promise<CommandView> {
  let answer = await api("POST", `/api/v1/devices/${id}/commands`, OPERATOR, body);
  for (let i = 0; i < 100 && answer.status === 404; i++) {
    await new Promise((r) => setTimeout(r, 100));
    answer = await api("POST", `/api/v1/devices/${id}/commands`, OPERATOR, body);
  }
  expect(answer.status).toBe(202);
  return answer.body as CommandView;
}

async function commandOf(deviceId: string, commandId: string): Promise<CommandView | undefined> {
  const list = await api("GET", `/api/v1/devices/${deviceId}/commands`, VIEWER);
  expect(list.status).toBe(200);
  return (list.body as CommandList).items.find((c) => c.id === commandId);
}

const statusOf = async (deviceId: string, commandId: string) =>
  (await commandOf(deviceId, commandId))?.status;

beforeAll(async () => {
  const db = await testDatabase("commands");
  const dataDir = await mkdtemp(join(tmpdir(), "fieldq-commands-"));
  const config = testConfig(db, dataDir, { FIELDQ_COMMAND_RATE: String(RATE) });
  stack = await startFieldq(config, { logger: silentLogger }, { broker: true, api: true });
  closeAll = async () => {
    await Promise.all(devices.map((d) => d.disconnect().catch(() => {})));
    await stack.close();
    await db.drop();
    await rm(dataDir, { recursive: true, force: true });
  };
}, 60_000);

afterAll(async () => {
  await closeAll?.();
});

describe("remote commands through the stack", () => {
  test("a reboot sent through the API reaches the device, is delivered, then succeeded with its answer", async () => {
    const modem = device("modem-cmd-1");
    modem.hold = true;
    await modem.connect(true);
    const queued = await send(modem.id, { type: "reboot" });
    expect(queued).toMatchObject({
      device: modem.id,
      type: "reboot",
      status: "queued",
      result: null,
      batch: null,
    });
    expect(queued.by).toMatch(/operator/);

    await expect.poll(() => modem.received.length, { timeout: 10_000 }).toBe(1);
    expect(modem.received[0]).toMatchObject({ commandId: queued.id, command: { type: "reboot" } });
    // Acknowledged (PUBACK) but not answered yet: delivered.
    await expect.poll(() => statusOf(modem.id, queued.id), { timeout: 10_000 }).toBe("delivered");

    await modem.answer(queued.id, true, "rebooting");
    await expect.poll(() => statusOf(modem.id, queued.id), { timeout: 10_000 }).toBe("succeeded");
    const done = await commandOf(modem.id, queued.id);
    expect(done?.result).toEqual({ ok: true, message: "rebooting" });
    expect(done?.deliveredAt).not.toBeNull();
    expect(Date.parse(done?.deliveredAt ?? "")).toBeGreaterThanOrEqual(Date.parse(queued.createdAt));
    // Sent once: the PUBACK stopped the dispatcher from sending it again.
    expect(modem.received).toHaveLength(1);
  }, 30_000);

  test("a device that answers not ok shows failed, answered when fieldq heard it (its clock lags)", async () => {
    const modem = device("modem-cmd-fail");
    modem.hold = true;
    modem.lagMs = 5 * 60_000;
    await modem.connect(true);
    const queued = await send(modem.id, { type: "recalibrate", args: { axis: "z" } });
    await expect.poll(() => modem.received.length, { timeout: 10_000 }).toBe(1);
    expect(modem.received[0]?.command.args).toEqual({ axis: "z" });
    await modem.answer(queued.id, false, "sensor busy");
    await expect.poll(() => statusOf(modem.id, queued.id), { timeout: 10_000 }).toBe("failed");
    const failed = await commandOf(modem.id, queued.id);
    expect(failed?.result).toEqual({ ok: false, message: "sensor busy" });
    // fieldq's clock, like createdAt and deliveredAt: never before the command was sent.
    expect(Date.parse(failed?.answeredAt ?? "")).toBeGreaterThanOrEqual(
      Date.parse(failed?.deliveredAt ?? ""),
    );
  }, 30_000);

  test("a command for an offline device waits, and goes out when it connects", async () => {
    const modem = device("modem-cmd-2");
    await modem.connect(false);
    await modem.disconnect();
    const queued = await send(modem.id, { type: "diagnostics" });
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await statusOf(modem.id, queued.id)).toBe("queued");

    await modem.connect(true);
    await expect.poll(() => modem.received.length, { timeout: 10_000 }).toBe(1);
    expect(modem.received[0]?.commandId).toBe(queued.id);
    await expect.poll(() => statusOf(modem.id, queued.id), { timeout: 10_000 }).toBe("succeeded");
  }, 30_000);

  test("a device on a persistent session gets its command when it comes back, without subscribing again", async () => {
    const modem = device("modem-cmd-session");
    await modem.connect(true, { clean: false, subscribe: true });
    await modem.disconnect();
    const queued = await send(modem.id, { type: "reboot" });
    await new Promise((r) => setTimeout(r, 1_200));
    expect(modem.received).toHaveLength(0);
    await modem.connect(true, { clean: false, subscribe: false });
    await expect.poll(() => modem.received.length, { timeout: 10_000 }).toBe(1);
    await expect.poll(() => statusOf(modem.id, queued.id), { timeout: 10_000 }).toBe("succeeded");
    expect((await commandOf(modem.id, queued.id))?.deliveredAt).not.toBeNull();
  }, 30_000);

  test("the simulator's devices answer commands end to end", async () => {
    const now = Date.now();
    const plan = plainPlan({ devices: 2, seed: 13, startMs: now, endMs: now + 3_600_000, cadenceMs: 60_000 });
    const sim = await runSim({
      brokerUrl: `mqtt://127.0.0.1:${stack.mqttPort}`,
      secret: TEST_SECRET,
      plan: { ...plan, deviceOptions: { offlineSpellsPerWeek: 0 } },
      seed: 13,
      logger: silentLogger,
    });
    try {
      const ids = plan.devices.map((d) => d.id);
      const views: CommandView[] = [];
      for (const id of ids) views.push(await send(id, { type: "diagnostics" }));
      for (const [i, id] of ids.entries()) {
        await expect
          .poll(() => statusOf(id, views[i]?.id ?? ""), { timeout: 15_000 })
          .toMatch(/^(succeeded|failed)$/);
        const done = await commandOf(id, views[i]?.id ?? "");
        expect(done?.result).not.toBeNull();
        expect(done?.deliveredAt).not.toBeNull();
      }
      expect(sim.stats().commands).toBe(ids.length);
    } finally {
      await sim.stop();
    }
  }, 60_000);

  test("a command whose device stays away past its ttl expires, and is not sent afterwards", async () => {
    const modem = device("modem-cmd-3");
    await modem.connect(false);
    await modem.disconnect();
    const queued = await send(modem.id, { type: "reboot", ttl: "2s" });
    expect(Date.parse(queued.expiresAt) - Date.parse(queued.createdAt)).toBe(2_000);
    await expect.poll(() => statusOf(modem.id, queued.id), { timeout: 10_000 }).toBe("expired");
    await modem.connect(true);
    await new Promise((r) => setTimeout(r, 1_500));
    expect(modem.received).toHaveLength(0);
  }, 30_000);

  test(`a bulk command to a cohort goes out to its devices only, no faster than ${RATE} a second`, async () => {
    const model = "FQ-Bulk 1";
    const cohort = Array.from({ length: 6 }, (_, i) => device(`modem-bulk-${i}`, model, "1.0"));
    const other = device("modem-bulk-other", model, "2.0");
    for (const d of [...cohort, other]) await d.connect(true);
    // The bulk command takes the cohort from the API's directory, which follows the hellos every few seconds.
    await expect
      .poll(
        async () => {
          const page = await api(
            "GET",
            `/api/v1/devices?model=${encodeURIComponent(model)}&firmware=1.0`,
            VIEWER,
          );
          return (page.body as { total: number }).total;
        },
        { timeout: 20_000, interval: 250 },
      )
      .toBe(cohort.length);

    const refused = await api("POST", "/api/v1/commands", VIEWER, {
      model,
      firmware: "1.0",
      type: "diagnostics",
    });
    expect(refused.status).toBe(403);
    const bulk = await api("POST", "/api/v1/commands", OPERATOR, {
      model,
      firmware: "1.0",
      type: "diagnostics",
    });
    expect(bulk.status).toBe(202);
    const answer = bulk.body as BulkCommandAnswer;
    expect(answer).toMatchObject({ count: cohort.length, type: "diagnostics" });

    await expect
      .poll(() => cohort.filter((d) => d.received.length === 1).length, { timeout: 15_000 })
      .toBe(cohort.length);
    const times = cohort.map((d) => d.received[0]?.atMs ?? 0).sort((a, b) => a - b);
    // Six sends at most RATE a second: at least five gaps of 1/RATE s between the first and the last (less a
    // little for the receivers' own timing).
    expect((times.at(-1) ?? 0) - (times[0] ?? 0)).toBeGreaterThanOrEqual(
      ((cohort.length - 1) * 1000) / RATE - 100,
    );
    expect(other.received).toHaveLength(0);

    await expect
      .poll(
        async () => {
          const view = await api("GET", `/api/v1/commands?batch=${answer.batch}`, VIEWER);
          return (view.body as BatchView).counts?.succeeded;
        },
        { timeout: 15_000 },
      )
      .toBe(cohort.length);
    const view = (await api("GET", `/api/v1/commands?batch=${answer.batch}`, VIEWER)).body as BatchView;
    expect(view.items.map((i) => i.device)).toEqual(cohort.map((d) => d.id).sort());
    expect(view.items.every((i) => i.batch === answer.batch && i.deliveredAt !== null)).toBe(true);
  }, 60_000);

  test("a viewer may list commands but not send them; bad input and unknown devices are refused", async () => {
    const modem = device("modem-cmd-4");
    await modem.connect(false);
    await send(modem.id, { type: "reboot" });
    const viewerPost = await api("POST", `/api/v1/devices/${modem.id}/commands`, VIEWER, { type: "reboot" });
    expect(viewerPost.status).toBe(403);
    expect(viewerPost.body).toMatchObject({ error: { code: "FORBIDDEN" } });
    expect((await api("GET", `/api/v1/devices/${modem.id}/commands`, VIEWER)).status).toBe(200);

    const badType = await api("POST", `/api/v1/devices/${modem.id}/commands`, OPERATOR, { type: "format" });
    expect(badType.status).toBe(400);
    expect(badType.body).toMatchObject({ error: { code: "BAD_REQUEST" } });
    const badTtl = await api("POST", `/api/v1/devices/${modem.id}/commands`, OPERATOR, {
      type: "reboot",
      ttl: "30d",
    });
    expect(badTtl.status).toBe(400);
    const unknown = await api("POST", "/api/v1/devices/no-such-device/commands", OPERATOR, {
      type: "reboot",
    });
    expect(unknown.status).toBe(404);
    expect((await api("GET", "/api/v1/devices/no-such-device/commands", VIEWER)).status).toBe(404);
    expect((await api("GET", "/api/v1/commands?batch=b1-0123456789ab", VIEWER)).status).toBe(404);
    expect((await api("GET", "/api/v1/commands?batch=nope", VIEWER)).status).toBe(400);
    expect((await api("GET", `/api/v1/devices/${modem.id}/commands`, "")).status).toBe(401);
  }, 30_000);

  test("the device page shows the commands, and its buttons send one for an operator only", async () => {
    const modem = device("modem-cmd-page");
    await modem.connect(true);
    await send(modem.id, { type: "reboot" });
    const origin = new URL(stack.apiUrl ?? "").origin;
    const signIn = async (token: string) => {
      const response = await fetch(`${origin}/sign-in`, {
        method: "POST",
        redirect: "manual",
        headers: { origin, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ token, next: "/" }),
      });
      expect(response.status).toBe(303);
      return response.headers
        .getSetCookie()
        .map((c) => c.split(";")[0])
        .join("; ");
    };
    const page = async (cookie: string) => {
      const response = await fetch(`${origin}/devices/${modem.id}`, { headers: { cookie } });
      expect(response.status).toBe(200);
      return response.text();
    };
    const press = (cookie: string, type: string) =>
      fetch(`${origin}/devices/${modem.id}/commands`, {
        method: "POST",
        redirect: "manual",
        headers: { cookie, origin, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ type }),
      });

    const operator = await signIn(OPERATOR);
    const html = await page(operator);
    expect(html).toContain("Commands");
    expect(html).toMatch(/<button[^>]*value="diagnostics"[^>]*>Run diagnostics<\/button>/);
    expect(html).toMatch(/reboot/);
    const pressed = await press(operator, "diagnostics");
    expect(pressed.status).toBe(303);
    expect(pressed.headers.get("location")).toBe(`/devices/${modem.id}`);
    await expect
      .poll(async () => {
        const list = await api("GET", `/api/v1/devices/${modem.id}/commands`, VIEWER);
        return (list.body as CommandList).items.map((i) => i.type).sort();
      })
      .toEqual(["diagnostics", "reboot"]);

    const viewer = await signIn(VIEWER);
    expect(await page(viewer)).not.toContain("Run diagnostics</button>");
    expect((await press(viewer, "reboot")).status).toBe(403);
  }, 30_000);
});

test("a command queued before a restart is read back from InfluxDB and sent by the new process", async () => {
  const db = await testDatabase("commands_restart");
  const dataDir = await mkdtemp(join(tmpdir(), "fieldq-commands-restart-"));
  const config = testConfig(db, dataDir);
  let running: FieldqHandle | undefined = await startFieldq(
    config,
    { logger: silentLogger },
    { broker: true, api: true },
  );
  const first = running;
  const modem = new TestDevice("modem-restart", "FQ-Cmd 1", "1.0", () => running?.mqttPort ?? 0);
  try {
    await modem.connect(false);
    await modem.disconnect();
    const post = async () =>
      fetch(`${first.apiUrl}/api/v1/devices/${modem.id}/commands`, {
        method: "POST",
        headers: { authorization: `Bearer ${OPERATOR}`, "content-type": "application/json" },
        body: JSON.stringify({ type: "reboot" }),
      });
    let response = await post();
    for (let i = 0; i < 100 && response.status === 404; i++) {
      await new Promise((r) => setTimeout(r, 100));
      response = await post();
    }
    expect(response.status).toBe(202);
    const queued = (await response.json()) as CommandView;
    await first.close();
    running = undefined;

    running = await startFieldq(config, { logger: silentLogger }, { broker: true, api: true });
    await modem.connect(true);
    await expect.poll(() => modem.received.map((r) => r.commandId), { timeout: 10_000 }).toEqual([queued.id]);
  } finally {
    await modem.disconnect().catch(() => {});
    await running?.close();
    await db.drop();
    await rm(dataDir, { recursive: true, force: true });
  }
}, 60_000);
