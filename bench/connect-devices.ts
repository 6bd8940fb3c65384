import { connect, type Socket } from "node:net";
import { deviceKey } from "../contract/device-key.js";
import { commandFilter, helloTopic, statusTopic } from "../contract/topics.js";
import { BENCH_SECRET, connectPacket, publishPacket, subscribePacket } from "./harness.js";

// One client process of bench:connect (forked by bench/connect.ts): it connects its share of the fleet to the
// broker the way a device does (docs/protocol.md), at most `concurrency` handshakes at a time, and keeps the
// connections open and idle (a PINGREQ now and then) until told to close them.
// A device counts as connected when the broker has answered all four of its opening packets: CONNACK (code
// 0), then SUBACK of its command filter at QoS 1, and the PUBACKs of its retained hello and status.
// Raw packets (harness.ts), not mqtt.js: a client costs little CPU, so the 2 cores go to the broker.

export type DevicesTask = {
  port: number;
  /** Device ids are `${prefix}${first + i}` for i < count. */
  prefix: string;
  first: number;
  count: number;
  concurrency: number;
  /** Loopback addresses to connect from, used in turn: each has its own ~28k source ports. */
  localAddresses: string[];
  keepaliveS: number;
  /** Whether hello and status are published retained, as the protocol asks (false: to see what retaining costs). */
  retain: boolean;
};

export type DevicesReport = {
  /** Date.now() when each device's fourth answer arrived, in completion order. */
  doneAt: number[];
  failed: number;
  firstError: string | undefined;
};

type Message = { kind: "start"; task: DevicesTask } | { kind: "close" };

const hello = (id: string) =>
  JSON.stringify({ kind: "modem", model: "FQ-M200", firmware: "2.4.1", hardware: "rev C", serial: id });

const HANDSHAKE_TIMEOUT_MS = 60_000;
/** Packet types (first byte >> 4) [MQTT-2.2.1]. */
const CONNACK = 2;
const PUBACK = 4;
const SUBACK = 9;
/** Connect flags: clean session, a will at QoS 1, retained [MQTT-3.1.2]. */
const CLEAN_WILL_QOS1_RETAIN = 0x02 | 0x04 | 0x08 | 0x20;

function openingPackets(id: string, keepaliveS: number, retain: boolean) {
  return {
    connect: connectPacket({
      clientId: id,
      username: id,
      password: deviceKey(BENCH_SECRET, id),
      flags: CLEAN_WILL_QOS1_RETAIN,
      keepalive: keepaliveS,
      will: { topic: statusTopic(id), payload: Buffer.from('{"state":"offline"}') },
    }),
    afterConnack: Buffer.concat([
      subscribePacket(1, [[commandFilter(id), 1]]),
      publish(helloTopic(id), hello(id), 2, retain),
      publish(statusTopic(id), '{"state":"online"}', 3, retain),
    ]),
  };
}

function publish(topic: string, payload: string, packetId: number, retain: boolean) {
  const bytes = publishPacket(topic, Buffer.from(payload), 1, packetId);
  if (retain) bytes[0] = (bytes[0] as number) | 0x01; // RETAIN [MQTT-3.3.1.3]
  return bytes;
}

/** Calls `onPacket(type, body)` for each whole packet in the stream's chunks [MQTT-2.2.3]. */
function packetReader(onPacket: (type: number, body: Buffer) => void) {
  let pending: Buffer = Buffer.alloc(0);
  return (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    for (;;) {
      let length = 0;
      let multiplier = 1;
      let at = 1;
      let complete = false;
      while (at < pending.length && at <= 4) {
        const byte = pending[at] as number;
        length += (byte & 0x7f) * multiplier;
        multiplier *= 128;
        at += 1;
        if ((byte & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete || pending.length < at + length) return;
      onPacket((pending[0] as number) >> 4, pending.subarray(at, at + length));
      pending = pending.subarray(at + length);
    }
  };
}

export async function runDevices(task: DevicesTask): Promise<DevicesReport & { sockets: Socket[] }> {
  const doneAt: number[] = [];
  const sockets: Socket[] = [];
  let failed = 0;
  let firstError: string | undefined;
  let next = 0;

  const connectOne = (i: number) =>
    new Promise<void>((resolve) => {
      const id = `${task.prefix}${task.first + i}`;
      const packets = openingPackets(id, task.keepaliveS, task.retain);
      const localAddress = task.localAddresses[i % task.localAddresses.length];
      const socket = connect({ host: "127.0.0.1", port: task.port, localAddress, noDelay: true });
      let answers = 0;
      let settled = false;
      const settle = (error?: string) => {
        if (settled) return;
        settled = true;
        socket.setTimeout(0);
        if (error === undefined) {
          doneAt.push(Date.now());
          sockets.push(socket);
        } else {
          failed += 1;
          firstError ??= `${id}: ${error}`;
          socket.destroy();
        }
        resolve();
      };
      socket.on(
        "data",
        packetReader((type, body) => {
          if (type === CONNACK) {
            if (body[1] !== 0) return settle(`CONNACK return code ${body[1]}`);
            socket.write(packets.afterConnack);
          } else if (type === SUBACK && body[2] !== 1) {
            return settle(`SUBACK granted ${body[2]}`);
          }
          if (type === CONNACK || type === SUBACK || type === PUBACK) answers += 1;
          if (answers === 4) settle();
        }),
      );
      // A handshake the broker never answers fails the device instead of holding up the run.
      socket.setTimeout(HANDSHAKE_TIMEOUT_MS, () => settle("no answer within 60 s"));
      socket.on("error", (error) => settle(error.message));
      socket.on("close", () => settle("closed before its answers"));
      socket.write(packets.connect);
    });

  const worker = async () => {
    while (next < task.count) await connectOne(next++);
  };
  await Promise.all(Array.from({ length: Math.min(task.concurrency, task.count) }, worker));
  return { doneAt, failed, firstError, sockets };
}

/** Forked by bench/connect.ts: waits for its task, reports, and keeps the connections until "close". */
if (process.argv.includes("--devices-child") && process.send !== undefined) {
  let sockets: Socket[] = [];
  let ping: NodeJS.Timeout | undefined;
  process.on("disconnect", () => process.exit(1));
  process.on("message", async (message: Message) => {
    if (message.kind === "start") {
      const { task } = message;
      const result = await runDevices(task);
      sockets = result.sockets;
      const pingreq = Buffer.from([0xc0, 0x00]);
      ping = setInterval(
        () => {
          for (const socket of sockets) socket.write(pingreq);
        },
        (task.keepaliveS * 1000) / 2,
      );
      const report: DevicesReport = {
        doneAt: result.doneAt,
        failed: result.failed,
        firstError: result.firstError,
      };
      process.send?.(report);
    } else if (message.kind === "close") {
      clearInterval(ping);
      // A DISCONNECT first, so the broker discards the wills [MQTT-3.1.2-10] instead of publishing them all.
      const disconnect = Buffer.from([0xe0, 0x00]);
      await Promise.all(
        sockets.map((socket) => new Promise<void>((done) => socket.end(disconnect, () => done()))),
      );
      process.exit(0);
    }
  });
  process.send({ ready: true });
}
