import mqttPacket from "mqtt-packet";
import { describe, expect, it } from "vitest";
import { PacketSizeGuard, PacketTooLarge } from "../../broker/packet-guard.js";

const LIMIT = 200;

const connect = mqttPacket.generate({
  cmd: "connect",
  protocolId: "MQTT",
  protocolVersion: 4,
  clientId: "modem-0001",
  clean: true,
  keepalive: 60,
  username: "modem-0001",
  password: Buffer.from("key"),
});

/** A QoS 1 PUBLISH whose remaining length is exactly `remaining` bytes. */
function publishOfLength(remaining: number): Buffer {
  const topic = "fq/v1/modem-0001/telemetry";
  const overhead = 2 + topic.length + 2; // topic length prefix, topic, message id
  const packet = mqttPacket.generate({
    cmd: "publish",
    topic,
    payload: Buffer.alloc(remaining - overhead, "x"),
    qos: 1,
    messageId: 7,
    retain: false,
    dup: false,
  });
  return packet;
}

const pingreq = mqttPacket.generate({ cmd: "pingreq" });
const small = publishOfLength(50);
const atLimit = publishOfLength(LIMIT);
const overLimit = publishOfLength(LIMIT + 1);
const huge = publishOfLength(3_000_000); // four remaining-length bytes

type Outcome = { passed: Buffer; error: Error | undefined };

/** Writes the chunks one by one (stopping at an error) and collects what came through. */
async function feed(chunks: Buffer[], limit = LIMIT): Promise<Outcome> {
  const guard = new PacketSizeGuard(limit);
  const passed: Buffer[] = [];
  let error: Error | undefined;
  guard.on("data", (chunk: Buffer) => passed.push(chunk));
  const done = new Promise<void>((resolve) => {
    guard.on("end", resolve);
    guard.on("error", (e) => {
      error = e;
      resolve();
    });
  });
  for (const chunk of chunks) {
    if (guard.destroyed) break;
    guard.write(chunk);
  }
  if (!guard.destroyed) guard.end();
  await done;
  return { passed: Buffer.concat(passed), error };
}

const bytewise = (buffer: Buffer) => [...buffer].map((b) => Buffer.from([b]));

const splits = [
  ["in one chunk", (b: Buffer) => [b]],
  ["one byte at a time", bytewise],
] as const;

describe.each(splits)("PacketSizeGuard fed %s", (_how, split) => {
  it.each([
    ["a CONNECT", connect],
    ["a small PUBLISH", small],
    ["a PUBLISH exactly at the limit", atLimit],
    ["a PINGREQ (remaining length 0)", pingreq],
    ["several packets", Buffer.concat([connect, small, pingreq, atLimit, pingreq, small])],
  ])("passes %s through unchanged", async (_case, bytes) => {
    const { passed, error } = await feed(split(bytes));
    expect(error).toBeUndefined();
    expect(passed.equals(bytes)).toBe(true);
  });

  it("refuses a PUBLISH one byte over the limit", async () => {
    const { error } = await feed(split(overLimit));
    expect(error).toBeInstanceOf(PacketTooLarge);
    expect(error).toMatchObject({ announced: LIMIT + 1, limit: LIMIT });
  });

  it("refuses an oversized packet that follows good ones, after passing the good ones", async () => {
    const good = Buffer.concat([connect, pingreq, small]);
    const bytes = Buffer.concat([good, overLimit]);
    const { passed, error } = await feed(split(bytes));
    expect(error).toBeInstanceOf(PacketTooLarge);
    // What passed is a prefix that holds at most the oversized packet's fixed header, never its body.
    expect(bytes.subarray(0, passed.length).equals(passed)).toBe(true);
    expect(passed.length).toBeLessThan(good.length + 3);
  });
});

describe("PacketSizeGuard", () => {
  it("refuses an oversized packet as soon as its fixed header has arrived", async () => {
    const header = huge.subarray(0, 5); // type byte and four remaining-length bytes
    expect(header[4]).toBeLessThan(0x80);
    const { passed, error } = await feed([header]);
    expect(error).toBeInstanceOf(PacketTooLarge);
    expect(error).toMatchObject({ announced: 3_000_000, limit: LIMIT });
    expect(passed.length).toBe(0);
  });

  it("refuses an oversized packet whose header arrives byte by byte", async () => {
    const { error } = await feed(bytewise(huge.subarray(0, 5)));
    expect(error).toMatchObject({ announced: 3_000_000 });
  });

  it("has let the good packets through, byte by byte, before it refuses the next one", async () => {
    const good = Buffer.concat([connect, pingreq, small]);
    const { passed } = await feed(bytewise(Buffer.concat([good, overLimit])));
    expect(passed.subarray(0, good.length).equals(good)).toBe(true);
  });

  it("names the sizes in its message", () => {
    expect(new PacketTooLarge(300, 200).message).toBe("packet of 300 bytes is over the limit of 200");
  });

  it("passes a packet body that spans many chunks", async () => {
    const bytes = Buffer.concat([small, small]);
    const chunks = [bytes.subarray(0, 1), bytes.subarray(1, 3), bytes.subarray(3, 40), bytes.subarray(40)];
    const { passed, error } = await feed(chunks);
    expect(error).toBeUndefined();
    expect(passed.equals(bytes)).toBe(true);
  });
});
