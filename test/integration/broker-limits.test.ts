import { execFile } from "node:child_process";
import { once } from "node:events";
import { connect as netConnect, type Socket } from "node:net";
import { Writable } from "node:stream";
import { promisify } from "node:util";
import type mqtt from "mqtt";
import mqttPacket, { type Packet } from "mqtt-packet";
import { pino } from "pino";
import { test as base, describe, expect } from "vitest";
import { startBroker } from "../../broker/start-broker.js";
import { deviceKey } from "../../contract/device-key.js";
import {
  commandFilter,
  commandResultTopic,
  commandTopic,
  errorsTopic,
  helloTopic,
  statusTopic,
  telemetryTopic,
} from "../../contract/topics.js";
import { createMetrics } from "../../observe/metrics.js";
import { SMALL_BROKER_LIMITS, startTestStack, TEST_SECRET, type TestStack } from "../support/stack.js";

// The broker's limits from outside: one device or one address must not cost the others anything. Real
// connections throughout: mqtt.js, the mosquitto C client, and raw bytes over TCP for what clients refuse
// to send.

const run = promisify(execFile);

/** A test with a stack of its own, started with these settings. */
function withStack(label: string, overrides: NodeJS.ProcessEnv) {
  return base.extend<{ stack: TestStack }>({
    // biome-ignore lint/correctness/noEmptyPattern: vitest fixtures take their dependencies by destructuring
    stack: async ({}, use) => {
      const stack = await startTestStack(label, overrides);
      await use(stack);
      await stack.close();
    },
  });
}

async function total(metric: { get(): Promise<{ values: { value: number }[] }> }): Promise<number> {
  return (await metric.get()).values.reduce((sum, v) => sum + v.value, 0);
}

async function labelled(
  metric: { get(): Promise<{ values: { value: number; labels: Record<string, string | number> }[] }> },
  label: string,
): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const v of (await metric.get()).values) counts[String(v.labels[label])] = v.value;
  return counts;
}

const telemetry = (seq: number) => JSON.stringify({ ts: Date.now(), seq, metrics: { snr_margin_db: 7.5 } });

/** An MQTT session over a bare socket: sends any bytes, and reads back what the broker answers. */
async function rawSession(port: number, localAddress = "127.0.0.1") {
  const socket: Socket = netConnect({ port, host: "127.0.0.1", localAddress });
  socket.on("error", () => {});
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const received: Packet[] = [];
  let wake: () => void = () => {};
  parser.on("packet", (packet) => {
    received.push(packet);
    wake();
  });
  socket.on("data", (data) => parser.parse(data));
  const closed = once(socket, "close").then(() => "closed" as const);
  await once(socket, "connect");
  return {
    socket,
    closed,
    received,
    send(packet: Packet | Buffer) {
      socket.write(Buffer.isBuffer(packet) ? packet : mqttPacket.generate(packet));
    },
    /** The next packet of this kind the broker sends, or "closed" if it closes the connection first. */
    async next(cmd: Packet["cmd"]): Promise<Packet | "closed"> {
      for (;;) {
        const index = received.findIndex((p) => p.cmd === cmd);
        if (index >= 0) return received.splice(index, 1)[0] as Packet;
        if (socket.destroyed) return "closed";
        await Promise.race([new Promise<void>((resolve) => (wake = resolve)), closed]);
      }
    },
    end() {
      socket.destroy();
    },
  };
}

function publish(topic: string, payload: string, qos: 0 | 1, messageId?: number): Packet {
  const packet = {
    cmd: "publish" as const,
    topic,
    payload: Buffer.from(payload),
    qos,
    retain: false,
    dup: false,
  };
  return messageId === undefined ? packet : { ...packet, messageId };
}

function connectPacket(
  id: string,
  extra: Partial<mqttPacket.IConnectPacket> = {},
): mqttPacket.IConnectPacket {
  return {
    cmd: "connect",
    protocolId: "MQTT",
    protocolVersion: 4,
    clean: true,
    keepalive: 60,
    clientId: id,
    username: id,
    password: Buffer.from(deviceKey(TEST_SECRET, id)),
    ...extra,
  };
}

/** A connected raw session of the device. */
async function rawDevice(port: number, id: string, localAddress?: string) {
  const session = await rawSession(port, localAddress);
  session.send(connectPacket(id));
  const connack = await session.next("connack");
  expect(connack).toMatchObject({ cmd: "connack", returnCode: 0 });
  return session;
}

describe("QoS 0 over the rate", () => {
  // A token every 100 s: nothing is earned while the test runs, so what passes is exactly the burst.
  const test = withStack("qos0-drops", {
    FIELDQ_DEVICE_RATE: "0.01",
    FIELDQ_DEVICE_BURST: "5",
    FIELDQ_FLOOD_DROPS: "1000",
  });

  test("is dropped unread and counted, the device told once, and only what passed stored", async ({
    stack,
  }) => {
    const id = "modem-0100";
    const device = await rawDevice(stack.stack.mqttPort, id);
    device.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: errorsTopic(id), qos: 0 }] });
    await device.next("suback");
    for (let seq = 1; seq <= 5; seq++) {
      device.send(publish(telemetryTopic(id), telemetry(seq), 1, seq));
      expect(await device.next("puback")).toMatchObject({ messageId: seq });
    }
    // One write, so the broker reads them at once; the PINGRESP comes once it has decided on all 15.
    const flood = Array.from({ length: 15 }, (_, i) => publish(telemetryTopic(id), telemetry(6 + i), 0));
    device.send(Buffer.concat([...flood, { cmd: "pingreq" } as Packet].map((p) => mqttPacket.generate(p))));
    await device.next("pingresp");

    expect(await labelled(stack.metrics.messagesThrottled, "qos")).toEqual({ "0": 15 });
    const notice = (await device.next("publish")) as mqttPacket.IPublishPacket;
    expect(notice.topic).toBe(errorsTopic(id));
    expect(JSON.parse(notice.payload.toString())).toMatchObject({ reason: "rate_limited" });
    await stack.drained();
    const rows = await stack.query<{ seq: number }>(
      `SELECT "seq" FROM "raw"."telemetry" WHERE "device" = '${id}'`,
    );
    expect(rows.map((r) => r.seq).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5]);
    const notices = device.received.filter((p) => p.cmd === "publish");
    expect(notices).toEqual([]); // one rate_limited for the 15, taken above
    device.end();
  });
});

describe("fair share", () => {
  const test = withStack("fair-share", {
    FIELDQ_DEVICE_RATE: "1",
    FIELDQ_DEVICE_BURST: "5",
    FIELDQ_FLOOD_DROPS: "1000",
  });

  test("holds QoS 1 over the rate back until its turn, losing none, while another device goes at its own pace", async ({
    stack,
  }) => {
    const slow = await stack.connect("modem-0101");
    const other = await stack.connect("modem-0102");
    const held = Array.from({ length: 7 }, (_, i) =>
      slow.publishAsync(telemetryTopic("modem-0101"), telemetry(i + 1), { qos: 1 }),
    );
    // The other device's burst is its own: all five pass while the first device's messages wait.
    for (let seq = 1; seq <= 5; seq++) {
      await other.publishAsync(telemetryTopic("modem-0102"), telemetry(seq), { qos: 1 });
    }
    await Promise.all(held);
    expect(await labelled(stack.metrics.messagesThrottled, "qos")).toEqual({ "1": 2 });
    expect(await labelled(stack.metrics.messagesAccepted, "channel")).toEqual({ telemetry: 12 });
  });

  test("keeps no retained message of a device, hello and status included: nobody could read one", async ({
    stack,
  }) => {
    const id = "modem-0103";
    const device = await stack.connect(id);
    const hello = { kind: "modem", model: "FQ-M200", firmware: "2.4.1", hardware: "rev C", serial: "M-1" };
    await device.publishAsync(helloTopic(id), JSON.stringify(hello), { qos: 1, retain: true });
    await device.publishAsync(statusTopic(id), JSON.stringify({ state: "online" }), { qos: 1, retain: true });
    await device.publishAsync(telemetryTopic(id), telemetry(1), { qos: 1, retain: true });
    for (let i = 0; i < 3; i++) {
      const result = JSON.stringify({ ts: Date.now(), seq: 2 + i, ok: true });
      await device.publishAsync(commandResultTopic(id, `cmd-${i}`), result, { qos: 1, retain: true });
    }
    expect(await stack.stack.broker.retainedTopics()).toEqual([]);
  });
});

describe("floods", () => {
  const test = withStack("flood", {
    FIELDQ_DEVICE_RATE: "1",
    FIELDQ_DEVICE_BURST: "5",
    FIELDQ_FLOOD_DROPS: "30",
  });

  test("disconnects a device that keeps flooding, tells it why, and refuses it for a while", async ({
    stack,
  }) => {
    const id = "modem-0110";
    const flooder = await stack.connect(id);
    const errors: { reason: string; message: string }[] = [];
    flooder.on("message", (_topic, payload) => errors.push(JSON.parse(payload.toString())));
    await flooder.subscribeAsync(errorsTopic(id), { qos: 0 });
    const closed = new Promise<void>((resolve) => flooder.once("close", () => resolve()));
    for (let seq = 1; seq <= 100; seq++) flooder.publish(telemetryTopic(id), telemetry(seq), { qos: 0 });
    await closed;

    expect(await total(stack.metrics.floodDisconnects)).toBe(1);
    expect(errors.at(-1)).toMatchObject({
      reason: "rate_limited",
      message: expect.stringMatching(/^disconnected/),
    });
    const again = await rawSession(stack.stack.mqttPort);
    again.send(connectPacket(id));
    expect(await again.next("connack")).toMatchObject({ returnCode: 3 }); // server unavailable, for now
    again.end();
    // Nobody else is refused.
    const neighbour = await rawDevice(stack.stack.mqttPort, "modem-0111");
    neighbour.end();
  });
});

describe("subscriptions", () => {
  const test = withStack("subscriptions", { FIELDQ_MAX_SUBSCRIPTIONS: "3" });
  const id = "modem-0120";
  const grantedOf = (device: mqtt.MqttClient, filter: string) =>
    device.subscribeAsync(filter, { qos: 1 }).then(
      (granted) => granted[0]?.qos ?? -1,
      () => 128, // MQTT.js rejects a SUBACK of 0x80
    );

  test("refuses a subscription past the limit with 0x80, keeps the connection, and counts a freed one", async ({
    stack,
  }) => {
    const device = await stack.connect(id);
    const filters = [errorsTopic(id), commandFilter(id), commandTopic(id, "c1"), commandTopic(id, "c2")];
    const granted: number[] = [];
    for (const filter of filters) granted.push(await grantedOf(device, filter));
    expect(granted).toEqual([1, 1, 1, 128]);
    expect(await grantedOf(device, commandTopic(id, "c1"))).toBe(1); // held already: replaced, not added
    await device.unsubscribeAsync(commandTopic(id, "c1"));
    expect(await grantedOf(device, commandTopic(id, "c2"))).toBe(1);
    expect(await labelled(stack.metrics.subscriptionsRefused, "reason")).toEqual({ limit: 1 });
  });

  test("counts a persistent session's subscriptions after the device reconnects", async ({ stack }) => {
    const first = await stack.connect(id, { clean: false });
    const granted: number[] = [];
    for (const filter of [
      errorsTopic(id),
      commandFilter(id),
      commandTopic(id, "c1"),
      commandTopic(id, "c2"),
    ]) {
      granted.push(await grantedOf(first, filter));
    }
    expect(granted).toEqual([1, 1, 1, 128]);
    await first.endAsync();
    const second = await stack.connect(id, { clean: false });
    expect(await grantedOf(second, commandTopic(id, "c3"))).toBe(128);
    expect(await grantedOf(second, commandFilter(id))).toBe(1);
  });

  test("answers a filter of more than 100 levels with 0x80 and keeps the connection", async ({ stack }) => {
    const session = await rawDevice(stack.stack.mqttPort, id);
    const deep = `${commandTopic(id, "c1")}${"/x".repeat(100)}`;
    session.send({
      cmd: "subscribe",
      messageId: 7,
      subscriptions: [
        { topic: errorsTopic(id), qos: 1 },
        { topic: deep, qos: 1 },
        { topic: `${deep}/y`, qos: 0 },
      ],
    });
    expect(await session.next("suback")).toMatchObject({ messageId: 7, granted: [1, 128, 128] });
    session.send({ cmd: "pingreq" });
    expect(await session.next("pingresp")).toMatchObject({ cmd: "pingresp" });
    expect(await labelled(stack.metrics.subscriptionsRefused, "reason")).toEqual({ invalid: 2 });
    session.end();
  });
});

describe("malformed packets", () => {
  const test = withStack("malformed", {});
  const id = "modem-0130";

  /** A PUBLISH whose topic bytes are `topic` with bytes patched in after encoding. */
  function publishWithTopicBytes(topic: string, patch: (topicBytes: Buffer) => void, qos: 0 | 1 = 1) {
    const bytes = mqttPacket.generate({
      cmd: "publish",
      topic,
      payload: Buffer.from(telemetry(1)),
      qos,
      messageId: 9,
      retain: false,
      dup: false,
    });
    const start = 2 + 2; // a one-byte remaining length here, then the topic's length prefix
    patch(bytes.subarray(start, start + Buffer.byteLength(topic)));
    return bytes;
  }

  test.for([
    ["U+0000 [MQTT-1.5.3-2]", (t: Buffer) => t.writeUInt8(0x00, t.length - 1)],
    ["a byte that is never UTF-8 [MQTT-1.5.3-1]", (t: Buffer) => t.writeUInt8(0xff, t.length - 1)],
    ["an encoded surrogate [MQTT-1.5.3-1]", (t: Buffer) => t.set([0xed, 0xa0, 0x80], t.length - 3)],
  ] as const)(
    "closes the connection of a PUBLISH whose topic holds %s, storing nothing",
    async ([, patch], { stack }) => {
      const session = await rawDevice(stack.stack.mqttPort, id);
      session.send(publishWithTopicBytes(`${telemetryTopic(id)}XYZ`, patch));
      expect(await session.next("puback")).toBe("closed");
      expect(await total(stack.metrics.messagesAccepted)).toBe(0);
      expect(await total(stack.metrics.messagesRefused)).toBe(0);
    },
  );

  test("closes the connection of a CONNECT with will QoS 3 without accepting it [MQTT-3.1.2-14]", async ({
    stack,
  }) => {
    const session = await rawSession(stack.stack.mqttPort);
    const bytes = mqttPacket.generate(
      connectPacket(id, {
        will: { topic: statusTopic(id), payload: Buffer.from('{"state":"offline"}'), qos: 2, retain: false },
      }),
    );
    const flags = 2 + 6 + 1; // fixed header, "MQTT", protocol level
    bytes.writeUInt8((bytes[flags] as number) | 0x18, flags);
    session.send(bytes);
    expect(await session.next("connack")).toBe("closed");
    expect(stack.stack.broker.connectedDevices()).toBe(0);
  });

  test("answers a CONNECT without a username with CONNACK 5, as the C client shows", async ({ stack }) => {
    const args = ["-h", "127.0.0.1", "-p", String(stack.stack.mqttPort), "-V", "mqttv311", "-i", id, "-d"];
    const refused = run("mosquitto_pub", [...args, "-t", telemetryTopic(id), "-m", "{}"]);
    await expect(refused).rejects.toMatchObject({ stdout: expect.stringContaining("received CONNACK (5)") });
  });
});

describe("connections", () => {
  const test = withStack("connections", {
    FIELDQ_MAX_CONNECTIONS_PER_IP: "3",
    FIELDQ_AUTH_FAILURES_PER_MINUTE: "3",
  });

  test("refuses an address's connections past its share unread, and still takes another address's", async ({
    stack,
  }) => {
    const port = stack.stack.mqttPort;
    const held = await Promise.all([1, 2, 3].map(() => rawSession(port)));
    const refused = await rawSession(port);
    expect(await refused.next("connack")).toBe("closed");
    expect(await labelled(stack.metrics.connectionsRefused, "reason")).toEqual({ per_ip: 1 });
    const elsewhere = await rawDevice(port, "modem-0140", "127.0.0.2");
    for (const session of [...held, elsewhere]) session.end();
  });

  test("throttles an address that keeps failing to authenticate, and nobody else", async ({ stack }) => {
    const port = String(stack.stack.mqttPort);
    const id = "modem-0141";
    const wrongKey = ["-h", "127.0.0.1", "-p", port, "-V", "mqttv311", "-i", id, "-u", id, "-P", "wrong"];
    for (let i = 0; i < 3; i++) {
      await expect(
        run("mosquitto_pub", [...wrongKey, "-t", telemetryTopic(id), "-m", "{}"]),
      ).rejects.toMatchObject({
        stderr: expect.stringMatching(/not authori[sz]ed/i),
      });
    }
    // Now even the right key from that address is turned away before the broker reads it.
    const throttled = await rawSession(stack.stack.mqttPort);
    throttled.send(connectPacket(id));
    expect(await throttled.next("connack")).toBe("closed");
    expect(await labelled(stack.metrics.connectionsRefused, "reason")).toEqual({ auth_throttled: 1 });
    const elsewhere = await rawDevice(stack.stack.mqttPort, id, "127.0.0.2");
    elsewhere.end();
  });
});

describe("connect timeout", () => {
  const test = withStack("connect-timeout", { FIELDQ_CONNECT_TIMEOUT: "300ms" });

  test("closes a connection that sends no CONNECT within the connect timeout", async ({ stack }) => {
    const idle = await rawSession(stack.stack.mqttPort);
    await idle.closed;
    expect(await labelled(stack.metrics.connectionsRefused, "reason")).toEqual({ connect_timeout: 1 });
  });
});

describe("log lines about refused input", () => {
  base("stay short when a CONNECT carries a 60,000-character client id", async () => {
    let logged = 0;
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        logged += chunk.length;
        callback();
      },
    });
    const broker = await startBroker({
      listen: { host: "127.0.0.1", port: 0 },
      limits: SMALL_BROKER_LIMITS,
      deviceSecret: TEST_SECRET,
      maxPayloadBytes: 64 * 1024,
      logger: pino({ level: "debug" }, sink),
      metrics: createMetrics(),
      receive: async () => ({ kind: "accepted" }),
      presence: async () => {},
    });
    try {
      const session = await rawSession(broker.port);
      session.send(connectPacket("x".repeat(60_000), { username: "y".repeat(60_000) }));
      expect(await session.next("connack")).toMatchObject({ returnCode: 5 });
      await session.closed;
      expect(logged).toBeGreaterThan(0);
      expect(logged).toBeLessThan(2_000);
    } finally {
      await broker.close();
    }
  });
});
