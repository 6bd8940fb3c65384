import { execFile } from "node:child_process";
import { promisify } from "node:util";
import mqtt from "mqtt";
import { test as base, describe, expect } from "vitest";
import { deviceKey } from "../../contract/device-key.js";
import { commandFilter, errorsTopic, faultTopic, helloTopic, telemetryTopic } from "../../contract/topics.js";
import { startTestStack, TEST_SECRET, type TestStack } from "../support/stack.js";

const run = promisify(execFile);

const test = base.extend<{ stack: TestStack }>({
  // biome-ignore lint/correctness/noEmptyPattern: vitest fixtures take their dependencies by destructuring
  stack: async ({}, use) => {
    const stack = await startTestStack("broker");
    await use(stack);
    await stack.close();
  },
});

/** One QoS 1 publish through the Eclipse Mosquitto C client, as an MQTT 3.1.1 device. */
function mosquittoPub(port: string, id: string, password: string, topic: string, payload: string) {
  const args = ["-h", "127.0.0.1", "-p", port, "-V", "mqttv311", "-i", id, "-u", id, "-P", password];
  return run("mosquitto_pub", [...args, "-q", "1", "-t", topic, "-m", payload]);
}

/** Connects and resolves with the CONNACK return code (0 accepted). */
async function connackCode(url: string, options: mqtt.IClientOptions): Promise<number> {
  const client = mqtt.connect(url, {
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 5_000,
    ...options,
  });
  try {
    return await new Promise<number>((resolve, reject) => {
      client.once("connect", () => resolve(0));
      client.once("error", (error) => {
        const code = (error as Error & { code?: number }).code;
        if (typeof code === "number") resolve(code);
        else reject(error);
      });
    });
  } finally {
    client.end(true);
  }
}

describe("authentication", () => {
  test("accepts a device with its own key and refuses wrong or missing credentials", async ({ stack }) => {
    const id = "modem-0001";
    expect(
      await connackCode(stack.mqttUrl, { clientId: id, username: id, password: deviceKey(TEST_SECRET, id) }),
    ).toBe(0);
    expect(
      await connackCode(stack.mqttUrl, {
        clientId: id,
        username: id,
        password: deviceKey("another-secret-xx", id),
      }),
    ).toBe(5);
    expect(
      await connackCode(stack.mqttUrl, {
        clientId: id,
        username: id,
        password: deviceKey(TEST_SECRET, "modem-0002"),
      }),
    ).toBe(5);
    expect(await connackCode(stack.mqttUrl, { clientId: id })).toBe(5);
    expect(
      await connackCode(stack.mqttUrl, {
        clientId: "other",
        username: id,
        password: deviceKey(TEST_SECRET, id),
      }),
    ).toBe(2);
    const failures = await stack.metrics.authFailures.get();
    expect(failures.values.reduce((sum, v) => sum + v.value, 0)).toBe(4);
  });

  test("works with a real C client (mosquitto_pub)", async ({ stack }) => {
    const id = "modem-0003";
    const port = String(stack.stack.mqttPort);
    const payload = JSON.stringify({ ts: Date.now(), seq: 1, code: "WAN_DOWN", severity: "error" });
    await mosquittoPub(port, id, deviceKey(TEST_SECRET, id), faultTopic(id), payload);
    const refused = mosquittoPub(port, id, "wrong", faultTopic(id), payload);
    await expect(refused).rejects.toMatchObject({ stderr: expect.stringMatching(/not authori[sz]ed/i) });
    await stack.drained();
    const rows = await stack.query<{ code: string; device: string }>(
      `SELECT "seq", "code", "device" FROM "long"."fault"`,
    );
    expect(rows).toMatchObject([{ code: "WAN_DOWN", device: id }]);
  });
});

describe("access control", () => {
  test("closes the connection of a device publishing under another device's prefix, storing nothing", async ({
    stack,
  }) => {
    const device = await stack.connect("modem-0010");
    const closed = new Promise<void>((resolve) => device.once("close", () => resolve()));
    device.publish(
      telemetryTopic("modem-0011"),
      JSON.stringify({ ts: Date.now(), seq: 1, metrics: { x: 1 } }),
      { qos: 1 },
    );
    await closed;
    expect((await stack.metrics.messagesAccepted.get()).values).toEqual([]);
    expect(stack.stack.journal.backlog.entries).toBeLessThanOrEqual(2); // presence online/offline only
  });

  test.for([
    ["its errors topic", (id: string) => errorsTopic(id)],
    ["$SYS", () => "$SYS/broker/heartbeat"],
    ["a topic outside fq/v1", () => "home/kitchen/light"],
  ] as const)("refuses a publish to %s", async ([, topicOf], { stack }) => {
    const device = await stack.connect("modem-0012");
    const closed = new Promise<void>((resolve) => device.once("close", () => resolve()));
    device.publish(topicOf("modem-0012"), "{}", { qos: 1 });
    await closed;
    expect(await stack.metrics.authFailures.get()).toMatchObject({
      values: [{ labels: { reason: "publish not allowed" }, value: 1 }],
    });
    expect((await stack.metrics.messagesAccepted.get()).values).toEqual([]);
  });

  test("grants a device its errors and command topics and refuses everything else", async ({ stack }) => {
    const device = await stack.connect("modem-0020");
    const filters = [
      errorsTopic("modem-0020"),
      commandFilter("modem-0020"),
      "fq/v1/#",
      errorsTopic("modem-0021"),
      "$SYS/#",
      helloTopic("modem-0020"),
      "#",
    ];
    const granted: number[] = [];
    for (const filter of filters) {
      // MQTT.js rejects a SUBACK of 0x80 (failure) [MQTT-3.9.3-2]; that rejection is the refusal.
      granted.push(
        await device.subscribeAsync(filter, { qos: 1 }).then(
          (g) => g[0]?.qos ?? -1,
          () => 128,
        ),
      );
    }
    expect(granted).toEqual([1, 1, 128, 128, 128, 128, 128]);
  });

  test("never forwards one device's messages to another", async ({ stack }) => {
    const spy = await stack.connect("modem-0030");
    const seen: string[] = [];
    spy.on("message", (topic) => seen.push(topic));
    await expect(spy.subscribeAsync(errorsTopic("modem-0031"), { qos: 0 })).rejects.toThrow(
      /Subscribe error/,
    );
    const victim = await stack.connect("modem-0031");
    await victim.publishAsync(telemetryTopic("modem-0031"), "not json", { qos: 1 });
    await new Promise((r) => setTimeout(r, 200));
    expect(seen).toEqual([]);
  });
});

describe("limits", () => {
  test("cuts off a connection whose packet is far over the payload limit before buffering it", async ({
    stack,
  }) => {
    const device = await stack.connect("modem-0040");
    const closed = new Promise<void>((resolve) => device.once("close", () => resolve()));
    device.publish(telemetryTopic("modem-0040"), Buffer.alloc(512 * 1024, 0x20), { qos: 1 });
    await closed;
    expect(await stack.metrics.messagesRefused.get()).toMatchObject({
      values: [{ labels: { reason: "too_large" }, value: 1 }],
    });
  });
});
