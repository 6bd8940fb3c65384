import { Aedes, type AuthenticateError, type Client, type PublishPacket } from "aedes";
import type { BrokerLimits } from "../config/env.js";
import type { DeviceError } from "../contract/messages.js";
import { errorsTopic, topicOwner } from "../contract/topics.js";
import type { IngestOutcome } from "../ingest/ingest.js";
import type { Logger } from "../observe/logger.js";
import type { Metrics } from "../observe/metrics.js";
import { canPublish, canSubscribe, canWill } from "./acl.js";
import { authenticateDevice } from "./auth.js";
import { type ListenerPorts, type ListenOptions, type OnConnection, startListeners } from "./listeners.js";
import { guardSocket } from "./packet-guard.js";

export type BrokerOptions = {
  listen: ListenOptions;
  limits: BrokerLimits;
  deviceSecret: string;
  maxPayloadBytes: number;
  logger: Logger;
  metrics: Metrics;
  /** Called before a publish is acknowledged: the message is durable when this resolves. */
  receive: (
    deviceId: string,
    topic: string,
    payload: Buffer,
    source: "device" | "will",
  ) => Promise<IngestOutcome>;
  presence: (deviceId: string, state: "online" | "offline") => Promise<void>;
};

export type BrokerHandle = {
  /** The first port listening: plain MQTT when it is on. */
  port: number;
  ports: ListenerPorts;
  connectedDevices(): number;
  /** Stops accepting connections, disconnects every client, and waits for in-flight publishes. */
  close(): Promise<void>;
};

/** Headroom over the payload limit for the topic and headers; a larger packet is cut off unread. */
const PACKET_OVERHEAD_BYTES = 64 * 1024;

export async function startBroker(options: BrokerOptions): Promise<BrokerHandle> {
  const { logger, metrics } = options;
  const connections = new Map<string, number>();
  let inFlight = 0;
  let drained: (() => void) | undefined;

  const authError = (returnCode: 2 | 5, message: string) =>
    Object.assign(new Error(message), { returnCode }) as AuthenticateError;

  const notifyDevice = (deviceId: string, error: DeviceError) => {
    broker.publish(
      {
        cmd: "publish",
        topic: errorsTopic(deviceId),
        payload: Buffer.from(JSON.stringify(error)),
        qos: 0,
        retain: false,
        dup: false,
      },
      () => {},
    );
  };

  /** Counts work the broker started, so close() can wait for it to reach the journal. */
  async function track<T>(work: () => Promise<T>): Promise<T> {
    inFlight += 1;
    try {
      return await work();
    } finally {
      inFlight -= 1;
      if (inFlight === 0) drained?.();
    }
  }

  function ingestPublish(deviceId: string, packet: PublishPacket, source: "device" | "will") {
    return track(async () => {
      const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
      const outcome = await options.receive(deviceId, packet.topic, payload, source);
      if (outcome.kind === "refused") {
        // A refused message is acknowledged (a retry cannot mend it) but must not linger as retained.
        packet.retain = false;
        notifyDevice(deviceId, {
          ts: Date.now(),
          topic: packet.topic,
          reason: outcome.reason,
          message: outcome.message,
        });
      }
      return outcome;
    });
  }

  const broker = await Aedes.createBroker({
    authenticate(client, username, password, done) {
      const decision = authenticateDevice(options.deviceSecret, client.id, username, password);
      if (decision.ok) return done(null, true);
      metrics.authFailures.inc({ reason: decision.reason });
      logger.warn({ clientId: client.id, username, reason: decision.reason }, "refused a device connection");
      done(authError(decision.returnCode, decision.reason), false);
    },

    authorizePublish(client: Client | null, packet, done) {
      // client is null for the will of a client whose broker died [aedes]; the topic names the device.
      const deviceId = client?.id ?? topicOwner(packet.topic);
      const isWill = client === null || packet === (client as Client & { will?: unknown }).will;
      const allowed =
        deviceId !== undefined &&
        (isWill ? canWill(deviceId, packet.topic) : canPublish(deviceId, packet.topic));
      if (!allowed || deviceId === undefined) {
        metrics.authFailures.inc({ reason: "publish not allowed" });
        logger.warn(
          { clientId: client?.id, topic: packet.topic },
          "refused a publish outside the device's topics",
        );
        return done(new Error(`publish to ${packet.topic} not allowed`));
      }
      ingestPublish(deviceId, packet, isWill ? "will" : "device").then(
        (outcome) => {
          if (outcome.kind === "unavailable") {
            metrics.messagesRefused.inc({ reason: "journal_full" });
            // No PUBACK: the connection closes and the device keeps the message to send again.
            return done(new Error("journal full"));
          }
          done(null);
        },
        (error: unknown) => {
          logger.error(
            { err: error, deviceId, topic: packet.topic },
            "ingest failed; message left unacknowledged",
          );
          done(error as Error);
        },
      );
    },

    authorizeSubscribe(client, subscription, done) {
      if (canSubscribe(client.id, subscription.topic)) return done(null, subscription);
      metrics.authFailures.inc({ reason: "subscribe not allowed" });
      logger.warn({ clientId: client.id, filter: subscription.topic }, "refused a subscription");
      done(null, null);
    },
  });

  const presence = (deviceId: string, state: "online" | "offline") =>
    track(() => options.presence(deviceId, state)).catch((error: unknown) =>
      logger.error({ err: error, deviceId }, "presence not recorded"),
    );

  broker.on("clientReady", (client) => {
    const count = (connections.get(client.id) ?? 0) + 1;
    connections.set(client.id, count);
    metrics.connectedDevices.set(connections.size);
    logger.debug({ deviceId: client.id }, "device connected");
    if (count === 1) void presence(client.id, "online");
  });
  broker.on("clientDisconnect", (client) => {
    const count = (connections.get(client.id) ?? 0) - 1;
    if (count > 0) connections.set(client.id, count);
    else connections.delete(client.id);
    metrics.connectedDevices.set(connections.size);
    logger.debug({ deviceId: client.id }, "device disconnected");
    if (count === 0) void presence(client.id, "offline");
  });
  broker.on("clientError", (client, error) =>
    logger.debug({ clientId: client.id, err: error.message }, "client error"),
  );

  let listeners: Awaited<ReturnType<typeof startListeners>>;
  const onConnection: OnConnection = (socket, peer) => {
    const connection = guardSocket(socket, options.maxPayloadBytes + PACKET_OVERHEAD_BYTES, (error) => {
      metrics.messagesRefused.inc({ reason: "too_large" });
      logger.warn(
        { remote: peer.remoteAddress, announced: error.announced },
        "closed a connection sending an oversized packet",
      );
    });
    broker.handle(connection);
  };
  try {
    listeners = await startListeners(options.listen, onConnection);
  } catch (error) {
    // aedes's heartbeat timers would keep the process alive after a failed start.
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    throw error;
  }
  const port = Object.values(listeners.ports)[0] as number;

  return {
    port,
    ports: listeners.ports,
    connectedDevices: () => connections.size,
    async close() {
      const serverClosed = listeners.close();
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      if (inFlight > 0) await new Promise<void>((resolve) => (drained = resolve));
      await serverClosed;
    },
  };
}
