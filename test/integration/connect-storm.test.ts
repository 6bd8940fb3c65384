import type mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { commandFilter, commandTopic, helloTopic, statusTopic } from "../../contract/topics.js";
import { startTestStack, type TestStack } from "../support/stack.js";

// A fleet connecting at once, as after a broker restart, functionally (its speed is bench:connect's): every
// device publishes its hello and status with the retain flag, as the protocol suggests. Each device gets its
// command filter and nothing retained of anyone's, the broker keeps none of them however often they connect,
// and a command reaches its device alone.

const DEVICES = 2_000;
/** Devices connecting at a time, so the test's own mqtt.js clients stay light. */
const WAVE = 200;

const ids = Array.from({ length: DEVICES }, (_, i) => `storm-${String(i).padStart(4, "0")}`);
const hello = (id: string) =>
  JSON.stringify({ kind: "modem", model: "FQ-M200", firmware: "2.4.1", hardware: "rev C", serial: id });

let stack: TestStack;
/** Messages each device received, by device id. */
const received = new Map<string, string[]>();

/** Connects every device as the protocol asks: retained hello and status, then its command filter at QoS 1. */
async function connectFleet(): Promise<mqtt.MqttClient[]> {
  const clients: mqtt.MqttClient[] = [];
  for (let from = 0; from < DEVICES; from += WAVE) {
    const wave = await Promise.all(
      ids.slice(from, from + WAVE).map(async (id) => {
        const client = await stack.connect(id, {
          will: { topic: statusTopic(id), payload: Buffer.from('{"state":"offline"}'), qos: 1, retain: true },
        });
        client.on("message", (topic) => received.get(id)?.push(topic));
        await client.publishAsync(helloTopic(id), hello(id), { qos: 1, retain: true });
        await client.publishAsync(statusTopic(id), '{"state":"online"}', { qos: 1, retain: true });
        const [granted] = await client.subscribeAsync(commandFilter(id), { qos: 1 });
        expect(granted?.qos).toBe(1);
        return client;
      }),
    );
    clients.push(...wave);
  }
  return clients;
}

async function disconnect(clients: mqtt.MqttClient[]) {
  for (let from = 0; from < clients.length; from += WAVE)
    await Promise.all(clients.slice(from, from + WAVE).map((c) => c.endAsync()));
}

describe("a fleet of 2,000 devices with retained hello and status connecting at once", () => {
  beforeAll(async () => {
    stack = await startTestStack("connect-storm", {
      FIELDQ_MAX_CONNECTIONS: String(DEVICES + 100),
      FIELDQ_MAX_CONNECTIONS_PER_IP: String(DEVICES + 100),
    });
    for (const id of ids) received.set(id, []);
  }, 60_000);
  afterAll(async () => {
    await stack?.close();
  }, 60_000);

  it("gives each device its command filter and no one's retained message, and keeps none", async () => {
    // Twice, as a fleet reconnecting after a restart.
    await disconnect(await connectFleet());
    const clients = await connectFleet();
    await stack.drained(60_000);

    expect(ids.every((id) => stack.stack.broker.isSubscribed(id))).toBe(true);
    expect([...received.values()].flat()).toEqual([]);
    expect(await stack.stack.broker.retainedTopics()).toEqual([]);

    const target = ids[1234] as string;
    expect(
      await stack.stack.broker.sendCommand(target, "c-1", JSON.stringify({ type: "reboot", ts: 1 })),
    ).toBe(true);
    await expect.poll(() => received.get(target)).toEqual([commandTopic(target, "c-1")]);
    expect([...received].filter(([, topics]) => topics.length > 0).map(([id]) => id)).toEqual([target]);
    await disconnect(clients);
  }, 240_000);
});
