import { Duplex } from "node:stream";
import mqttPacket from "mqtt-packet";
import { describe, expect, it, vi } from "vitest";
import {
  connectViolation,
  forLog,
  guardReads,
  MAX_TOPIC_LEVELS,
  malformedString,
  PacketTooLarge,
  topicLevels,
} from "../../broker/packet-guard.js";

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

/** A socket's two ends: what the device sends is pushed in, what the broker writes is kept, one entry a write. */
function deviceSocket() {
  const writes: Buffer[] = [];
  const socket = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      writes.push(chunk);
      callback();
    },
    writev(chunks, callback) {
      writes.push(Buffer.concat(chunks.map((c) => c.chunk as Buffer)));
      callback();
    },
  });
  return { socket, writes };
}

/** What the socket has let its reader (aedes) have so far. */
function reader(stream: Duplex) {
  const passed: Buffer[] = [];
  stream.on("data", (chunk: Buffer) => passed.push(chunk));
  return () => Buffer.concat(passed);
}

type Outcome = { passed: Buffer; error: PacketTooLarge | undefined; destroyed: boolean };

/** Hands the chunks to a guarded socket as its reads (stopping when it is closed) and collects what came through. */
async function feed(chunks: Buffer[], limit = LIMIT): Promise<Outcome> {
  const { socket } = deviceSocket();
  let error: PacketTooLarge | undefined;
  guardReads(socket, limit, (e) => {
    error = e;
  });
  const passed = reader(socket);
  for (const chunk of chunks) {
    if (socket.destroyed) break;
    socket.push(chunk);
  }
  if (!socket.destroyed) socket.push(null);
  await new Promise<void>((resolve) => socket.on("close", resolve).on("end", resolve));
  return { passed: passed(), error, destroyed: socket.destroyed };
}

const bytewise = (buffer: Buffer) => [...buffer].map((b) => Buffer.from([b]));

const splits = [
  ["in one chunk", (b: Buffer) => [b]],
  ["one byte at a time", bytewise],
] as const;

describe.each(splits)("a guarded socket fed %s", (_how, split) => {
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

  it("refuses a PUBLISH one byte over the limit, and closes the connection", async () => {
    const { error, destroyed } = await feed(split(overLimit));
    expect(error).toBeInstanceOf(PacketTooLarge);
    expect(error).toMatchObject({ announced: LIMIT + 1, limit: LIMIT });
    expect(destroyed).toBe(true);
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

describe("the read guard", () => {
  it("refuses an oversized packet as soon as its fixed header has arrived", async () => {
    const header = huge.subarray(0, 5); // type byte and four remaining-length bytes
    expect(header[4]).toBeLessThan(0x80);
    const { passed, error, destroyed } = await feed([header]);
    expect(error).toBeInstanceOf(PacketTooLarge);
    expect(error).toMatchObject({ announced: 3_000_000, limit: LIMIT });
    expect(passed.length).toBe(0);
    expect(destroyed).toBe(true);
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

  it("leaves the socket's writes alone: corked pieces still leave as one write", async () => {
    const { socket, writes } = deviceSocket();
    guardReads(socket, LIMIT, () => {});
    socket.cork();
    socket.write(small.subarray(0, 2));
    socket.write(small.subarray(2));
    process.nextTick(() => socket.uncork());
    await new Promise((resolve) => setImmediate(resolve));
    expect(writes).toEqual([small]);
  });
});

describe("holding reads", () => {
  it("passes nothing before the hold ends, then everything in order, and tells the socket to stop reading", async () => {
    vi.useFakeTimers({ now: 1_000 });
    try {
      const { socket } = deviceSocket();
      const guard = guardReads(socket, LIMIT, () => {});
      const passed = reader(socket);
      guard.holdUntil(2_000);
      guard.holdUntil(1_500);
      // false: net.Socket stops reading from the kernel, so TCP holds the device back.
      expect(socket.push(small)).toBe(false);
      expect(socket.push(pingreq)).toBe(false);
      await vi.advanceTimersByTimeAsync(999);
      expect(passed()).toEqual(Buffer.alloc(0));
      await vi.advanceTimersByTimeAsync(1);
      expect(passed()).toEqual(Buffer.concat([small, pingreq]));
      expect(socket.push(small)).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it("ends the stream after what it held, in order", async () => {
    vi.useFakeTimers({ now: 1_000 });
    try {
      const { socket } = deviceSocket();
      const guard = guardReads(socket, LIMIT, () => {});
      const passed = reader(socket);
      let ended = false;
      socket.on("end", () => {
        ended = true;
      });
      guard.holdUntil(1_500);
      socket.push(small);
      socket.push(null);
      await vi.advanceTimersByTimeAsync(499);
      expect(ended).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      expect(passed()).toEqual(small);
      expect(ended).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it("hands nothing on to a connection closed during the hold", async () => {
    vi.useFakeTimers({ now: 1_000 });
    try {
      const { socket } = deviceSocket();
      // The socket's own push, which the guard hands chunks on to: a destroyed stream would drop them anyway
      // (so the reader alone could not tell), but the guard must not hand on what it held for a closed one.
      const handOn = vi.spyOn(socket, "push");
      const guard = guardReads(socket, LIMIT, () => {});
      const passed = reader(socket);
      guard.holdUntil(1_500);
      socket.push(small);
      socket.destroy();
      await vi.advanceTimersByTimeAsync(500);
      expect(passed()).toEqual(Buffer.alloc(0));
      expect(handOn).not.toHaveBeenCalled();
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("MQTT string rules", () => {
  /** What mqtt-packet hands aedes for these bytes on the wire. */
  const decoded = (bytes: number[]) => Buffer.from(bytes).toString("utf8");

  it.each([
    ["U+0000 [MQTT-1.5.3-2]", "fq/v1/modem-0001/tele\u0000metry"],
    ["a lone continuation byte", decoded([0x66, 0x80, 0x71])],
    ["an overlong encoding of /", decoded([0x66, 0xc0, 0xaf])],
    ["an encoded surrogate (U+D800)", decoded([0xed, 0xa0, 0x80])],
    ["a truncated four-byte sequence", decoded([0x66, 0xf0, 0x9f, 0x98])],
    ["0xFF", decoded([0xff])],
  ])("finds %s malformed [MQTT-1.5.3-1]", (_case, text) => {
    expect(malformedString(text)).toBe(true);
  });

  it.each([
    ["an ASCII topic", "fq/v1/modem-0001/telemetry"],
    ["well-formed multi-byte UTF-8", decoded([0x63, 0x61, 0x66, 0xc3, 0xa9, 0xf0, 0x9f, 0x98, 0x80])],
    ["the empty string", ""],
  ])("finds %s well-formed", (_case, text) => {
    expect(malformedString(text)).toBe(false);
  });

  it("counts topic levels as aedes does: one more than the slashes", () => {
    expect(topicLevels("a")).toBe(1);
    expect(topicLevels("/")).toBe(2);
    expect(topicLevels("fq/v1/modem-0001/cmd/+")).toBe(5);
    expect(topicLevels("a/".repeat(MAX_TOPIC_LEVELS))).toBe(MAX_TOPIC_LEVELS + 1);
  });
});

describe("connectViolation", () => {
  const connect = { clientId: "modem-0001", username: "modem-0001" };

  it("finds nothing wrong with a device's CONNECT, with or without a will", () => {
    expect(connectViolation(connect)).toBeUndefined();
    expect(
      connectViolation({ ...connect, will: { topic: "fq/v1/modem-0001/status", qos: 1 } }),
    ).toBeUndefined();
    expect(connectViolation({ clientId: "" })).toBeUndefined();
  });

  it.each([
    [
      "will QoS 3 [MQTT-3.1.2-14]",
      { ...connect, will: { topic: "fq/v1/modem-0001/status", qos: 3 } },
      "will QoS 3",
    ],
    [
      "U+0000 in the will topic",
      { ...connect, will: { topic: "fq/v1/a\u0000/status", qos: 1 } },
      "malformed will topic",
    ],
    ["ill-formed UTF-8 in the client id", { ...connect, clientId: "modem\uFFFD" }, "malformed client id"],
    ["U+0000 in the username", { ...connect, username: "modem\u0000" }, "malformed username"],
  ])("finds %s", (_case, packet, violation) => {
    expect(connectViolation(packet)).toBe(violation);
  });
});

describe("forLog", () => {
  it("keeps short input whole", () => {
    expect(forLog("modem-0001")).toBe("modem-0001");
    expect(forLog(undefined)).toBeUndefined();
  });

  it("cuts long input to a few dozen characters and says how much is missing", () => {
    const quoted = forLog("x".repeat(60_000));
    expect(quoted).toBe(`${"x".repeat(64)}…(59936 more)`);
  });
});
