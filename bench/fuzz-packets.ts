import { connect } from "node:net";
import { deviceKey } from "../contract/device-key.js";
import { errorsTopic, telemetryTopic } from "../contract/topics.js";
import type { Random } from "../device-sim/random.js";
import {
  BENCH_SECRET,
  connectPacket,
  mqttString,
  packet,
  publishPacket,
  remainingLength,
  subscribePacket,
} from "./harness.js";

// Malformed MQTT 3.1.1 packets over raw TCP for npm run fuzz: CONNECT, SUBSCRIBE, PUBLISH, remaining lengths,
// truncation, random bytes. Each case says what the spec (or docs/protocol.md) lets the broker answer.

/** What the broker did: its first answer (connack:N, suback:N,…), and whether it closed the socket. */
export type Outcome = string;

export type PacketCase = {
  family: string;
  /** Written after a valid CONNECT was answered with CONNACK 0, when set. */
  afterConnect: boolean;
  bytes: Buffer;
  /** Acceptable outcomes; "open" means the broker may still be waiting for the rest. */
  expect: readonly Outcome[];
};

const CLOSED = "closed";

const validConnect = (id: string) =>
  connectPacket({ clientId: id, username: id, password: deviceKey(BENCH_SECRET, id) });

function randomBytes(r: Random, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = r.int(0, 255);
  return b;
}

/** Topic bytes MQTT forbids [MQTT-1.5.3-1, -2] [MQTT-3.3.2-2]: the broker must close the connection. */
const FORBIDDEN_IN_TOPIC = [
  Buffer.from("\u0000"),
  Buffer.from([0xff]),
  Buffer.from([0xc0, 0x80]),
  Buffer.from([0xed, 0xa0, 0x80]),
  Buffer.from("+"),
  Buffer.from("#"),
] as const;

export function packetCase(r: Random, id: string): PacketCase {
  const key = deviceKey(BENCH_SECRET, id);
  switch (r.int(0, 17)) {
    case 0: {
      const name = r.pick(["MQIsdp", "mqtt", "", "MQTTT", "MQ\u0000T"] as const);
      return {
        family: "connect: bad protocol name",
        afterConnect: false,
        bytes: connectPacket({ clientId: id, username: id, password: key, protocolName: name }),
        // MQTT 3.1's name: a server MAY take it [MQTT-3.1.2-1].
        expect: name === "MQIsdp" ? [CLOSED, "connack:1+closed", "connack:0"] : [CLOSED, "connack:1+closed"],
      };
    }
    case 1:
      return {
        family: "connect: bad protocol level",
        afterConnect: false,
        bytes: connectPacket({
          clientId: id,
          username: id,
          password: key,
          level: r.pick([0, 1, 2, 6, 255] as const),
        }),
        expect: [CLOSED, "connack:1+closed"],
      };
    case 2:
      return {
        family: "connect: reserved flag set [MQTT-3.1.2-3]",
        afterConnect: false,
        bytes: connectPacket({ clientId: id, username: id, password: key, flags: 0x03 }),
        expect: [CLOSED],
      };
    case 3:
      return {
        family: "connect: will QoS 3 [MQTT-3.1.2-14]",
        afterConnect: false,
        bytes: connectPacket({
          clientId: id,
          username: id,
          password: key,
          flags: 0x02 | 0x04 | 0x18,
          will: { topic: `fq/v1/${id}/status`, payload: Buffer.from('{"state":"offline"}') },
        }),
        expect: [CLOSED],
      };
    case 4: {
      const long = "x".repeat(r.pick([1_000, 23_000, 60_000] as const));
      return {
        family: "connect: long client id",
        afterConnect: false,
        bytes: connectPacket({ clientId: long, username: long, password: "nope" }),
        expect: ["connack:2+closed", "connack:5+closed", CLOSED],
      };
    }
    case 5:
      return {
        family: "connect: no username (CONNACK 4 or 5)",
        afterConnect: false,
        bytes: connectPacket({ clientId: id }),
        expect: ["connack:4+closed", "connack:5+closed"],
      };
    case 6:
      return {
        family: "connect: password without username [MQTT-3.1.2-22]",
        afterConnect: false,
        bytes: connectPacket({ clientId: id, password: key }),
        expect: [CLOSED, "connack:4+closed", "connack:5+closed"],
      };
    case 7: {
      const levels = r.pick([101, 150, 500, 5_000] as const);
      return {
        family: "subscribe: filter over 100 levels (SUBACK 0x80)",
        afterConnect: true,
        bytes: subscribePacket(1, [[`${errorsTopic(id)}${"/a".repeat(levels)}`, 0]]),
        expect: ["suback:128"],
      };
    }
    case 8:
      return {
        family: "subscribe: QoS 3 [MQTT-3.8.3-4]",
        afterConnect: true,
        bytes: subscribePacket(1, [[errorsTopic(id), 3]]),
        expect: [CLOSED],
      };
    case 9:
      return {
        family: "subscribe: no filters [MQTT-3.8.3-3]",
        afterConnect: true,
        bytes: subscribePacket(1, []),
        expect: [CLOSED],
      };
    case 10:
      return {
        family: "subscribe: other devices' topics (SUBACK 0x80)",
        afterConnect: true,
        bytes: subscribePacket(1, [
          [r.pick(["#", "fq/v1/+/errors", "$SYS/#", "fq/v1/fz-good-0/cmd/+", "+/+/+"] as const), 1],
        ]),
        expect: ["suback:128"],
      };
    case 11: {
      // U+FFFF is a noncharacter a server MAY close for [MQTT-1.5.3-3]; else the topic is outside fieldq's grammar.
      const noncharacter = r.chance(1 / 7);
      const bad = noncharacter ? Buffer.from("\uffff") : r.pick(FORBIDDEN_IN_TOPIC);
      const topic = Buffer.concat([Buffer.from(telemetryTopic(id)), bad]);
      const payload = Buffer.from(JSON.stringify({ ts: Date.now(), seq: 1, metrics: { x: 1 } }));
      return {
        family: noncharacter
          ? "publish: U+FFFF in topic"
          : "publish: NUL, invalid UTF-8 or wildcard in topic",
        afterConnect: true,
        bytes: publishPacket(topic, payload, 1, 7),
        expect: noncharacter ? [CLOSED, "puback"] : [CLOSED],
      };
    }
    case 12:
      return {
        family: "publish: QoS 3 [MQTT-3.3.1-4]",
        afterConnect: true,
        bytes: packet(
          0x36,
          Buffer.concat([mqttString(telemetryTopic(id)), Buffer.from([0, 1]), Buffer.from("{}")]),
        ),
        expect: [CLOSED],
      };
    case 13: {
      // Remaining length announcing more than follows: the broker may wait for the rest (until the timeout).
      const body = Buffer.concat([mqttString(telemetryTopic(id)), Buffer.from("{}")]);
      return {
        family: "remaining length longer than the packet",
        afterConnect: r.chance(0.5),
        bytes: Buffer.concat([Buffer.from([0x30]), remainingLength(body.length + r.int(1, 1000)), body]),
        expect: ["open", CLOSED],
      };
    }
    case 14:
      return {
        family: "remaining length: five bytes or 256 MB",
        afterConnect: r.chance(0.5),
        bytes: r.chance(0.5)
          ? Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x7f])
          : Buffer.concat([Buffer.from([0x30]), remainingLength(268_435_455), randomBytes(r, 64)]),
        expect: [CLOSED],
      };
    case 15: {
      const full = validConnect(id);
      return {
        family: "connect: truncated",
        afterConnect: false,
        bytes: full.subarray(0, r.int(1, full.length - 1)),
        expect: ["open", CLOSED],
      };
    }
    case 16:
      return {
        family: "second CONNECT or reserved packet type [MQTT-3.1.0-2]",
        afterConnect: true,
        bytes: r.chance(0.5) ? validConnect(id) : packet(r.pick([0x00, 0xf0] as const), Buffer.alloc(0)),
        expect: [CLOSED],
      };
    default: {
      const afterConnect = r.chance(0.5);
      return {
        family: afterConnect ? "random bytes after CONNECT" : "random bytes",
        afterConnect,
        bytes: randomBytes(r, r.int(1, 300)),
        // Random bytes may form a packet the broker answers; what matters is that it stays up.
        expect: ["*"],
      };
    }
  }
}

/** First packet the broker sent: its type, and the return code a CONNACK or SUBACK carries. */
function firstAnswer(data: Buffer): string | undefined {
  const type = data[0];
  if (type === undefined) return undefined;
  if (type === 0x20) return `connack:${data[3] ?? "?"}`;
  if (type === 0x90) return `suback:${data[4] ?? "?"}`;
  if (type === 0x40) return "puback";
  return `packet:0x${type.toString(16)}`;
}

/**
 * Plays a case on a fresh socket: a valid CONNECT first when the case needs it, then its bytes; waits until
 * the broker closes the socket or `waitMs` passes (an answer the broker owes comes well within it).
 */
export function playPacketCase(port: number, id: string, c: PacketCase, waitMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    let data: Buffer = Buffer.alloc(0);
    let connected = !c.afterConnect;
    let finished = false;
    const finish = (closed: boolean) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.destroy();
      const answer = firstAnswer(data);
      if (!connected)
        resolve(
          answer
            ? `${answer} to a valid CONNECT`
            : closed
              ? "closed before CONNACK"
              : "no CONNACK within 5 s",
        );
      else resolve(answer ? `${answer}${closed ? "+closed" : ""}` : closed ? CLOSED : "open");
    };
    // The CONNECT before a case may wait behind other connections; the case's own answer gets waitMs.
    let timer = setTimeout(() => finish(false), c.afterConnect ? 5_000 : waitMs);
    socket.on("error", () => finish(true));
    socket.on("close", () => finish(true));
    socket.on("connect", () => socket.write(c.afterConnect ? validConnect(id) : c.bytes));
    socket.on("data", (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      if (connected) return;
      // CONNACK 0 is four bytes, 0x20 0x02 0x00 0x00, and may arrive in pieces.
      if (data.length < 4) return;
      if (data[0] !== 0x20 || data[3] !== 0) return finish(false);
      connected = true;
      data = data.subarray(4);
      clearTimeout(timer);
      timer = setTimeout(() => finish(false), waitMs);
      socket.write(c.bytes);
    });
  });
}

export const outcomeExpected = (c: PacketCase, outcome: Outcome) =>
  c.expect.includes("*") || c.expect.includes(outcome) || (outcome === CLOSED && c.expect.includes("open"));
