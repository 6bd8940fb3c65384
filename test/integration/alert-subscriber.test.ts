import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { alertTopic, telemetryTopic } from "../../contract/topics.js";
import { startTestStack } from "../support/stack.js";

// The alert subscribers' service account on the real broker (FIELDQ_ALERT_MQTT_USERNAME / _PASSWORD): it
// receives what fieldq publishes under fieldq/alerts, may subscribe nowhere else, publishes nothing, and is
// no device; devices cannot subscribe to the alerts.

const USERNAME = "alerts:ops";
const PASSWORD = "alert-password-0123456789";

let t: Awaited<ReturnType<typeof startTestStack>>;
const services: mqtt.MqttClient[] = [];

beforeAll(async () => {
  t = await startTestStack("alert_subscriber", {
    FIELDQ_ALERT_MQTT_USERNAME: USERNAME,
    FIELDQ_ALERT_MQTT_PASSWORD: PASSWORD,
  });
}, 60_000);

afterAll(async () => {
  await Promise.all(services.map((c) => c.endAsync(true).catch(() => {})));
  await t?.close();
});

async function service(clientId: string, password = PASSWORD) {
  const client = await mqtt.connectAsync(t.mqttUrl, {
    clientId,
    username: USERNAME,
    password,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 5_000,
  });
  services.push(client);
  return client;
}

const messagesOf = (client: mqtt.MqttClient) => {
  const got: Array<{ topic: string; payload: string }> = [];
  client.on("message", (topic, payload) => got.push({ topic, payload: payload.toString("utf8") }));
  return got;
};

const closed = (client: mqtt.MqttClient) =>
  new Promise<void>((resolve) => client.once("close", () => resolve()));

describe("the alert subscribers' account", () => {
  test("receives fieldq's publishes under fieldq/alerts, and is refused every other filter", async () => {
    const pager = await service("alerts:pager-1");
    const got = messagesOf(pager);
    const filters = ["fieldq/alerts/#", "fq/v1/#", "#", "fieldq/#", "fq/v1/modem-a1/cmd/+", "$SYS/#"];
    const granted: number[] = [];
    for (const filter of filters) {
      // MQTT.js rejects a SUBACK of 0x80 (failure) [MQTT-3.9.3-2]; that rejection is the refusal.
      granted.push(
        await pager.subscribeAsync(filter, { qos: 1 }).then(
          (g) => g[0]?.qos ?? -1,
          () => 128,
        ),
      );
    }
    expect(granted).toEqual([1, 128, 128, 128, 128, 128]);
    const device = await t.connect("modem-a1");
    await device.publishAsync(
      telemetryTopic("modem-a1"),
      JSON.stringify({ ts: Date.now(), seq: 1, metrics: { x: 1 } }),
      {
        qos: 1,
      },
    );

    const topic = alertTopic("critical", "issue_opened");
    await t.stack.broker.publish(topic, JSON.stringify({ alert: "a-1" }));
    await expect.poll(() => got.length, { timeout: 5_000 }).toBe(1);
    expect(got[0]).toEqual({ topic, payload: JSON.stringify({ alert: "a-1" }) });
    // The device's telemetry reached nobody through the refused filters.
    expect(got.map((m) => m.topic)).not.toContain(telemetryTopic("modem-a1"));
  });

  test("is no device: not counted as connected, and a device cannot subscribe to the alerts", async () => {
    const before = t.stack.broker.connectedDevices();
    await service("alerts:pager-2");
    expect(t.stack.broker.connectedDevices()).toBe(before);

    const device = await t.connect("modem-a2");
    const got = messagesOf(device);
    await expect(device.subscribeAsync("fieldq/alerts/#", { qos: 1 })).rejects.toThrow(/Subscribe error/);
    await t.stack.broker.publish(alertTopic("warning", "issue_regressed"), "{}");
    await new Promise((r) => setTimeout(r, 300));
    expect(got).toHaveLength(0);
  });

  test.each([
    ["an alert topic", alertTopic("critical", "forged")],
    ["a device's topic", telemetryTopic("modem-a1")],
  ])("publishes nothing: a publish to %s closes its connection", async (_case, topic) => {
    const pager = await service(`alerts:pub-${topic.length}`);
    const listener = await service("alerts:listener");
    const got = messagesOf(listener);
    await listener.subscribeAsync("fieldq/alerts/#", { qos: 1 });
    const gone = closed(pager);
    pager.publish(topic, "{}", { qos: 1 });
    await gone;
    await new Promise((r) => setTimeout(r, 200));
    expect(got).toHaveLength(0);
  });

  test("a wrong password is refused with return code 5", async () => {
    await expect(service("alerts:wrong", "not-the-password-at-all")).rejects.toMatchObject({ code: 5 });
  });

  test("a client id a device could have is refused (code 2), and the device keeps its session", async () => {
    const device = await t.connect("modem-a3");
    let deviceClosed = false;
    device.on("close", () => {
      deviceClosed = true;
    });
    await expect(service("modem-a3")).rejects.toMatchObject({ code: 2 });
    await new Promise((r) => setTimeout(r, 200));
    expect(deviceClosed).toBe(false);
    expect(device.connected).toBe(true);
  });
});
