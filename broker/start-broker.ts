import type { Socket } from "node:net";
import type { Duplex, Writable } from "node:stream";
import {
  Aedes,
  type AuthenticateError,
  type Client,
  type ConnectPacket,
  type PublishPacket,
  type Subscription,
} from "aedes";
import type { BrokerLimits } from "../config/env.js";
import type { DeviceError } from "../contract/messages.js";
import {
  commandFilter,
  commandTopic,
  errorsTopic,
  parseDeviceTopic,
  topicOwner,
} from "../contract/topics.js";
import type { IngestOutcome } from "../ingest/ingest.js";
import type { Logger } from "../observe/logger.js";
import type { Metrics } from "../observe/metrics.js";
import {
  canPublish,
  canWill,
  isCommandFilter,
  serviceSubscriptionRefusal,
  subscriptionRefusal,
} from "./acl.js";
import {
  admitConnection,
  authThrottled,
  type ConnectionRefusal,
  forgetExpiredFailures,
  newAdmission,
  recordAuthFailure,
  releaseConnection,
} from "./admission.js";
import { authenticateDevice, SERVER_UNAVAILABLE } from "./auth.js";
import {
  type Admission,
  admit,
  coolingDown,
  type DeviceShare,
  FLOOD_COOL_DOWN_MS,
  isIdle,
  LOG_INTERVAL_MS,
  newShare,
  refund,
} from "./fair-share.js";
import {
  type Admit,
  type ListenerPorts,
  type ListenOptions,
  type OnConnection,
  startListeners,
} from "./listeners.js";
import {
  connectViolation,
  forLog,
  guardReads,
  MAX_TOPIC_LEVELS,
  malformedString,
  type ReadGuard,
  topicLevels,
} from "./packet-guard.js";
import { authenticateService, isServiceUsername, type ServiceAccount } from "./service-auth.js";

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
  /**
   * The account services use to subscribe to fieldq/alerts/# (config.alerts.mqtt): it may subscribe there and
   * nowhere else, publishes nothing, and is no device (no presence, no rate share). Undefined: no such account.
   */
  alertSubscriber?: ServiceAccount | undefined;
  /**
   * Where aedes keeps sessions, subscriptions and retained messages, and how it routes publishes between
   * brokers (broker/shared-state.ts: Redis, for several brokers). Undefined: this process's memory.
   */
  state?: BrokerState | undefined;
};

/** aedes's persistence and message emitter (aedes-persistence and mqemitter interfaces). */
export type BrokerState = { persistence: unknown; mq: unknown };

/** Removes the listener. */
export type Unlisten = () => void;

export type BrokerHandle = {
  /** The first port listening: plain MQTT when it is on. */
  port: number;
  ports: ListenerPorts;
  connectedDevices(): number;
  /** Topics holding a retained message (at most a hello and a status per device). */
  retainedTopics(): Promise<string[]>;
  /**
   * Publishes from fieldq itself (alerts; commands go with sendCommand): QoS 1, not retained, to whoever
   * subscribes; resolves once the broker has routed it (each subscriber's PUBACK comes later).
   */
  publish(topic: string, payload: string): Promise<void>;
  /**
   * Called when a device becomes ready for commands: it subscribed to its command filter at QoS 1, or came
   * back with a persistent session holding that subscription.
   */
  onDeviceReady(listener: (deviceId: string) => void): Unlisten;
  /**
   * Publishes a command QoS 1 on the device's command topic, to the connection that is ready for commands;
   * false when none is. Its PUBACK calls the onDelivered listeners.
   */
  sendCommand(deviceId: string, commandId: string, payload: string): Promise<boolean>;
  /** Called when a device acknowledges (PUBACK) a command sent with sendCommand. */
  onDelivered(listener: (deviceId: string, commandId: string) => void): Unlisten;
  /** Whether the device is connected and subscribed to its command filter at QoS 1 now. */
  isSubscribed(deviceId: string): boolean;
  /** Stops accepting connections, disconnects every client, and waits for in-flight publishes. */
  close(): Promise<void>;
};

/** Headroom over the payload limit for the topic and headers; a larger packet is cut off unread. */
const PACKET_OVERHEAD_BYTES = 64 * 1024;
const NO_FILTERS: ReadonlySet<string> = new Set();
/** How often shares of gone devices and expired authentication failures are forgotten. */
const SWEEP_INTERVAL_MS = 60_000;

/** What aedes's persistence offers beyond its types: the subscriptions it keeps and the retained messages. */
type Persistence = {
  addSubscriptions(client: Client, subs: Subscription[], ...rest: unknown[]): Promise<unknown>;
  subscriptionsByClient(client: { id: string }): Promise<Array<{ topic: string; qos: number }>>;
  createRetainedStreamCombi(patterns: string[]): AsyncIterable<{ topic: string }>;
};

/** Where aedes announces each new connection to the brokers sharing its emitter: `$SYS/{broker id}/new/clients`. */
const NEW_CLIENTS = "$SYS/+/new/clients";
type SharedEmitter = {
  on(topic: string, listener: (packet: { topic: string; payload: Buffer }, done: () => void) => void): void;
};

/** A QoS 1 message waiting for its device's next token; release() ingests it and acknowledges it. */
type Waiter = { client: Client; readyAt: number; release: () => void };
type WaitQueue = { waiters: Waiter[]; timer: NodeJS.Timeout | undefined };
type Dropped = Extract<Admission, { kind: "drop" }>;

export async function startBroker(options: BrokerOptions): Promise<BrokerHandle> {
  const { logger, metrics, limits } = options;
  const connections = new Map<string, number>();
  const admission = newAdmission();
  const shares = new Map<string, DeviceShare>();
  const queues = new Map<string, WaitQueue>();
  /** What each connection came from, for the per-address rules that act after CONNECT, and its read guard. */
  const peers = new WeakMap<Duplex, { address: string; arrivedAt: number; guard: ReadGuard }>();
  /** The filters each client holds: one as itself, more as a Set (a device holds one; a Set costs ~150 B). */
  const held = new WeakMap<Client, string | Set<string>>();
  /** Subscription objects refused: aedes would persist every filter of a SUBSCRIBE that had one granted. */
  const refusedSubscriptions = new WeakSet<Subscription>();
  /** Deep filters replaced before aedes saw them, so that they are refused and not a closed connection. */
  const tooDeep = new WeakSet<Subscription>();
  let inFlight = 0;
  let drained: (() => void) | undefined;
  /** Clients of the alert subscribers' service account: not devices. */
  const services = new WeakSet<Client>();
  /** The client id each CONNECT gave (aedes replaces an empty one before authenticate sees it). */
  const givenIds = new WeakMap<Client, string>();
  /** Devices ready for commands, with the connection that subscribed. */
  const ready = new Map<string, Client>();
  const readyListeners = new Set<(deviceId: string) => void>();
  const deliveredListeners = new Set<(deviceId: string, commandId: string) => void>();
  /** Commands sent on each connection and not acknowledged yet, by packet id. */
  const unacked = new WeakMap<Client, { nextId: number; commands: Map<number, string> }>();

  const authError = (returnCode: 2 | 3 | 5, message: string) =>
    Object.assign(new Error(message), { returnCode }) as AuthenticateError;
  const addressOf = (client: Client) => peers.get(client.conn as Duplex)?.address ?? "unknown";
  const shareOf = (deviceId: string, now: number) => {
    let share = shares.get(deviceId);
    if (share === undefined) {
      share = newShare(limits, now);
      shares.set(deviceId, share);
    }
    return share;
  };

  const notifyDevice = (deviceId: string, error: DeviceError, sent: () => void = () => {}) => {
    broker.publish(
      {
        cmd: "publish",
        topic: errorsTopic(deviceId),
        payload: Buffer.from(JSON.stringify(error)),
        qos: 0,
        retain: false,
        dup: false,
      },
      () => sent(),
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

  /** Connections corked until the event loop's next turn, so the PUBACKs one group commit releases share a write. */
  const corked = new Set<Writable>();
  const uncorkAll = () => {
    for (const conn of corked) conn.uncork();
    corked.clear();
  };
  function corkUntilNextTurn(client: Client | null) {
    const conn = (client as (Client & { conn?: Writable }) | null)?.conn;
    if (conn === undefined || corked.has(conn)) return;
    conn.cork();
    corked.add(conn);
    if (corked.size === 1) setImmediate(uncorkAll);
  }

  /** Makes the message durable, then lets aedes acknowledge it. */
  function accept(
    deviceId: string,
    packet: PublishPacket,
    source: "device" | "will",
    done: (error?: Error) => void,
    client: Client | null = null,
  ) {
    ingestPublish(deviceId, packet, source).then(
      (outcome) => {
        if (outcome.kind === "unavailable") {
          metrics.messagesRefused.inc({ reason: "journal_full" });
          // No PUBACK: the connection closes and the device keeps the message to send again.
          return done(new Error("journal full"));
        }
        // aedes writes the PUBACK within done() (lib/handlers/publish.js).
        corkUntilNextTurn(client);
        done();
      },
      (error: unknown) => {
        logger.error(
          { err: error, deviceId, topic: forLog(packet.topic) },
          "ingest failed; message left unacknowledged",
        );
        done(error as Error);
      },
    );
  }

  /**
   * Holds a QoS 1 message until its token is earned; aedes sends the PUBACK when done() is called. While a
   * packet is being authorized aedes reads no further bytes of that client: it handles the packets of one read
   * together and reads again when all of them are done (aedes lib/client.js, nextBatch), so a device sending
   * over its rate is slowed down by TCP itself, and the queue holds at most about one read of its packets.
   */
  function wait(deviceId: string, client: Client, readyAt: number, release: () => void) {
    let queue = queues.get(deviceId);
    if (queue === undefined) {
      queue = { waiters: [], timer: undefined };
      queues.set(deviceId, queue);
    }
    queue.waiters.push({ client, readyAt, release });
    if (queue.timer === undefined) schedule(deviceId, queue);
  }

  function schedule(deviceId: string, queue: WaitQueue) {
    const head = queue.waiters[0];
    if (head === undefined) {
      queues.delete(deviceId);
      return;
    }
    queue.timer = setTimeout(
      () => {
        queue.timer = undefined;
        const now = Date.now();
        // In arrival order: MQTT wants PUBACKs in the order of the PUBLISHes [MQTT-4.6.0-2].
        while (queue.waiters[0] !== undefined && queue.waiters[0].readyAt <= now) {
          queue.waiters.shift()?.release();
        }
        schedule(deviceId, queue);
      },
      Math.max(0, head.readyAt - Date.now()),
    );
  }

  /** A closed client's waiting messages are never acknowledged (the device sends them again): no ingest. */
  function forgetWaiters(client: Client) {
    const queue = queues.get(client.id);
    if (queue === undefined) return;
    const kept = queue.waiters.filter((w) => w.client !== client);
    const share = shares.get(client.id);
    if (share !== undefined) refund(share, queue.waiters.length - kept.length, limits);
    queue.waiters = kept;
    if (kept.length === 0) {
      clearTimeout(queue.timer);
      queues.delete(client.id);
    }
  }

  function drop(deviceId: string, client: Client, packet: PublishPacket, decision: Dropped) {
    peers.get(client.conn as Duplex)?.guard.holdUntil(decision.readAgainAt);
    if (decision.logDrops !== undefined) {
      logger.warn(
        { deviceId, dropped: decision.logDrops, rate: limits.deviceRate, burst: limits.deviceBurst },
        "dropped QoS 0 messages over the device's rate",
      );
    }
    if (decision.flood) {
      metrics.floodDisconnects.inc();
      logger.warn({ deviceId, drops: limits.floodDrops }, "disconnected a device flooding past its rate");
      const message = `disconnected: ${limits.floodDrops} messages over the rate of ${limits.deviceRate}/s within a minute; connect again after ${FLOOD_COOL_DOWN_MS / 1000} s`;
      // Told first, then disconnected: the notice has been written when the publish calls back.
      notifyDevice(deviceId, { ts: Date.now(), topic: packet.topic, reason: "rate_limited", message }, () =>
        client.close(),
      );
    } else if (decision.notify) {
      notifyDevice(deviceId, {
        ts: Date.now(),
        topic: packet.topic,
        reason: "rate_limited",
        message: `QoS 0 messages over the rate of ${limits.deviceRate}/s (burst ${limits.deviceBurst}) are dropped`,
      });
    }
  }

  /**
   * Connections another broker sharing this one's state took over: the device connected there with the same
   * client id, and aedes closes its connection here [MQTT-3.1.4-2]. The device has not gone offline, so this
   * close records no offline presence and publishes no will. The listener goes on the shared emitter before
   * aedes's own, which closes the client, so the mark is there before the close.
   */
  const movedAway = new WeakSet<Client>();
  let started: { id: string; clients: Record<string, Client | undefined> } | undefined;
  (options.state?.mq as SharedEmitter | undefined)?.on(NEW_CLIENTS, (packet, done) => {
    const local = started?.clients[packet.payload.toString()];
    if (local !== undefined && packet.topic.split("/")[1] !== started?.id) movedAway.add(local);
    done();
  });

  const broker = await Aedes.createBroker({
    connectTimeout: limits.connectTimeoutMs,
    ...(options.state ?? {}),

    preConnect(client, packet: ConnectPacket, done) {
      const violation = connectViolation(packet);
      if (violation !== undefined) {
        logger.warn(
          { remote: addressOf(client), clientId: forLog(packet.clientId), violation },
          "closed a connection sending a malformed CONNECT",
        );
        return done(new Error(violation), false);
      }
      givenIds.set(client, packet.clientId ?? "");
      // An address throttled while this connection was open gets no more attempts on it either.
      if (authThrottled(admission, addressOf(client), limits, Date.now())) {
        metrics.connectionsRefused.inc({ reason: "auth_throttled" });
        return done(new Error("too many failed CONNECTs from this address"), false);
      }
      done(null, true);
    },

    authenticate(client, username, password, done) {
      const address = addressOf(client);
      const now = Date.now();
      const refuse = (returnCode: 2 | 3 | 5, reason: string) => {
        metrics.authFailures.inc({ reason });
        logger.warn(
          { remote: address, clientId: forLog(client.id), username: forLog(username), reason },
          "refused a device connection",
        );
        if (recordAuthFailure(admission, address, limits, now)) {
          logger.warn(
            { remote: address, failures: limits.authFailuresPerMinute },
            "refusing this address's connections for the rest of the minute",
          );
        }
        done(authError(returnCode, reason), false);
      };
      const account = options.alertSubscriber;
      if (account !== undefined && isServiceUsername(account, username)) {
        const service = authenticateService(account, client.id, givenIds.get(client) ?? client.id, password);
        if (!service.ok) return refuse(service.returnCode, service.reason);
        services.add(client);
        logger.info({ clientId: forLog(client.id), remote: address }, "alert subscriber connected");
        return done(null, true);
      }
      const decision = authenticateDevice(options.deviceSecret, client.id, username, password);
      if (!decision.ok) return refuse(decision.returnCode, decision.reason);
      const share = shares.get(decision.deviceId);
      // Counted as a failed CONNECT too: a flooder reconnecting at once is soon refused unread.
      if (share !== undefined && coolingDown(share, now)) {
        return refuse(SERVER_UNAVAILABLE, "cooling down after a flood");
      }
      done(null, true);
    },

    authorizePublish(client: Client | null, packet, done) {
      // [MQTT-1.5.3-1] [MQTT-1.5.3-2]: a protocol violation closes the connection; nothing is stored.
      if (malformedString(packet.topic)) {
        logger.warn(
          { clientId: forLog(client?.id), topic: forLog(packet.topic) },
          "closed a connection publishing to a malformed topic",
        );
        return done(new Error("malformed topic"));
      }
      if (client !== null && services.has(client)) {
        metrics.authFailures.inc({ reason: "publish not allowed" });
        logger.warn(
          { clientId: forLog(client.id), topic: forLog(packet.topic) },
          "refused a publish from the alert subscribers' account",
        );
        return done(new Error("the alert subscribers' account publishes nothing"));
      }
      // client is null for the will of a client whose broker died [aedes]; the topic names the device.
      const deviceId = client?.id ?? topicOwner(packet.topic);
      const isWill = client === null || packet === (client as Client & { will?: unknown }).will;
      // aedes publishes no will it may not publish: the device is online on the other broker.
      if (isWill && client !== null && movedAway.has(client))
        return done(new Error("moved to another broker"));
      const allowed =
        deviceId !== undefined &&
        (isWill ? canWill(deviceId, packet.topic) : canPublish(deviceId, packet.topic));
      if (!allowed || deviceId === undefined) {
        metrics.authFailures.inc({ reason: "publish not allowed" });
        logger.warn(
          { clientId: forLog(client?.id), topic: forLog(packet.topic) },
          "refused a publish outside the device's topics",
        );
        return done(new Error(`publish to ${forLog(packet.topic)} not allowed`));
      }
      // No device message is kept retained: nobody could ever read one (no device may subscribe to another's
      // uplink, fieldq's services only to fieldq/alerts/#), and fieldq keeps each device's latest hello and
      // status in its own store. A retained hello and status cost some 1.7 KB per device (bench:connect).
      packet.retain = false;
      // A will is one message at the end of a connection: not counted against the rate.
      if (isWill || client === null) return accept(deviceId, packet, "will", done);

      const now = Date.now();
      const decision = admit(shareOf(deviceId, now), packet.qos, limits, now);
      if (decision.kind === "pass") return accept(deviceId, packet, "device", done, client);
      metrics.messagesThrottled.inc({ qos: String(packet.qos) });
      if (decision.kind === "wait") {
        return wait(deviceId, client, decision.readyAt, () =>
          accept(deviceId, packet, "device", done, client),
        );
      }
      // MQTT 3.1.1 cannot refuse one PUBLISH without closing [MQTT-3.3.5-2], and aedes closes on an error, so a
      // dropped QoS 0 message is let through unread: not ingested, and forwarded to no one, since no device
      // may subscribe to another's uplink topics (acl.ts) and fieldq subscribes to none.
      packet.retain = false;
      drop(deviceId, client, packet, decision);
      done();
    },

    authorizeSubscribe(client, subscription, done) {
      const filter = subscription.topic;
      if (malformedString(filter)) {
        // [MQTT-1.5.3-1] [MQTT-1.5.3-2]
        logger.warn(
          { clientId: forLog(client.id), filter: forLog(filter) },
          "closed a connection subscribing to a malformed filter",
        );
        return done(new Error("malformed filter"));
      }
      let refusal: "acl" | "limit" | "invalid" | undefined;
      const holds = held.get(client);
      const filters = typeof holds === "string" ? new Set([holds]) : (holds ?? NO_FILTERS);
      if (tooDeep.has(subscription)) refusal = "invalid";
      else if (services.has(client))
        refusal = serviceSubscriptionRefusal(filter, filters, limits.maxSubscriptions);
      else refusal = subscriptionRefusal(client.id, filter, filters, limits.maxSubscriptions);
      if (refusal === undefined) {
        if (holds === undefined || holds === filter) held.set(client, filter);
        else if (typeof holds === "string") held.set(client, new Set([holds, filter]));
        else holds.add(filter);
        return done(null, subscription);
      }
      refusedSubscriptions.add(subscription);
      metrics.subscriptionsRefused.inc({ reason: refusal });
      if (refusal === "acl") metrics.authFailures.inc({ reason: "subscribe not allowed" });
      logger.warn(
        { clientId: forLog(client.id), filter: forLog(filter), reason: refusal },
        "refused a subscription",
      );
      // A refusal in the SUBACK (0x80) [MQTT-3.9.3-2]; the connection stays.
      done(null, null);
    },
  });

  started = broker as unknown as typeof started;
  const persistence = (broker as unknown as { persistence: Persistence }).persistence;
  const addSubscriptions = persistence.addSubscriptions.bind(persistence);
  persistence.addSubscriptions = (client, subs, ...rest) =>
    addSubscriptions(
      client,
      subs.filter((s) => !refusedSubscriptions.has(s)),
      ...rest,
    );

  const presence = (deviceId: string, state: "online" | "offline") =>
    track(() => options.presence(deviceId, state)).catch((error: unknown) =>
      logger.error({ err: error, deviceId }, "presence not recorded"),
    );

  const becameReady = (deviceId: string, client: Client) => {
    ready.set(deviceId, client);
    for (const listener of readyListeners) listener(deviceId);
  };

  broker.on("clientReady", (client) => {
    if (services.has(client)) return;
    // A persistent session comes back with its subscriptions and no SUBSCRIBE.
    if (!client.clean) {
      persistence
        .subscriptionsByClient({ id: client.id })
        .then((subs) => {
          const held = subs.find((s) => isCommandFilter(client.id, s.topic) && s.qos >= 1);
          if (held !== undefined && client.connected && !client.closed) becameReady(client.id, client);
        })
        .catch((error: unknown) => logger.warn({ err: error, deviceId: client.id }, "session not read"));
    }
    const count = (connections.get(client.id) ?? 0) + 1;
    connections.set(client.id, count);
    metrics.connectedDevices.set(connections.size);
    logger.debug({ deviceId: client.id }, "device connected");
    if (count === 1) void presence(client.id, "online");
  });
  broker.on("clientDisconnect", (client) => {
    if (services.has(client)) return;
    if (ready.get(client.id) === client) ready.delete(client.id);
    forgetWaiters(client);
    const count = (connections.get(client.id) ?? 0) - 1;
    if (count > 0) connections.set(client.id, count);
    else connections.delete(client.id);
    metrics.connectedDevices.set(connections.size);
    logger.debug({ deviceId: client.id }, "device disconnected");
    if (count === 0 && !movedAway.has(client)) void presence(client.id, "offline");
  });
  broker.on("unsubscribe", (filters, client) => {
    const holds = held.get(client);
    if (typeof holds === "string" && filters.includes(holds)) held.delete(client);
    else if (typeof holds === "object") for (const filter of filters) holds.delete(filter);
    if (filters.includes(commandFilter(client.id)) && ready.get(client.id) === client)
      ready.delete(client.id);
  });
  broker.on("subscribe", (subscriptions, client) => {
    if (services.has(client)) return;
    // qos is the granted one here: 128 for a refusal [MQTT-3.9.3-2].
    const command = subscriptions.find((s) => isCommandFilter(client.id, s.topic));
    if (command === undefined) return;
    if (command.qos === 1 || command.qos === 2) becameReady(client.id, client);
    else if (ready.get(client.id) === client) ready.delete(client.id);
  });
  // aedes's "ack" event carries no packet for a clean session (it keeps no copy of what it sent one), so the
  // PUBACKs of commands sent on one are read off the connection's parser by the packet id fieldq gave them
  // (onConnection); a persistent session's come with their packet in the "ack" event.
  const acknowledged = (client: Client, messageId: number | undefined) => {
    const sentOn = unacked.get(client);
    const commandId = messageId === undefined ? undefined : sentOn?.commands.get(messageId);
    if (sentOn === undefined || commandId === undefined || messageId === undefined) return;
    sentOn.commands.delete(messageId);
    for (const listener of deliveredListeners) listener(client.id, commandId);
  };
  broker.on("ack", (packet, client) => {
    if (client?.clean !== false || services.has(client) || packet === undefined || !("topic" in packet))
      return;
    const parsed = parseDeviceTopic(packet.topic);
    if (parsed?.channel !== "cmd" || parsed.deviceId !== client.id) return;
    for (const listener of deliveredListeners) listener(parsed.deviceId, parsed.commandId);
  });
  broker.on("clientError", (client, error) =>
    logger.debug({ clientId: forLog(client.id), err: forLog(error.message, 200) }, "client error"),
  );
  broker.on("connectionError", (client, error) => {
    const peer = peers.get(client.conn as Duplex);
    // aedes's connect timer is the only thing that errs a connection that has sent nothing for this long.
    if (
      peer !== undefined &&
      !client.connecting &&
      !client.connected &&
      Date.now() - peer.arrivedAt >= limits.connectTimeoutMs
    ) {
      metrics.connectionsRefused.inc({ reason: "connect_timeout" });
    }
    logger.debug({ remote: peer?.address, err: forLog(error.message, 200) }, "connection error");
  });

  const refusalLoggedAt = new Map<ConnectionRefusal, number>();
  const refusedSinceLog = new Map<ConnectionRefusal, number>();
  let listeners: Awaited<ReturnType<typeof startListeners>>;
  /** A closed socket's place is given back; its address was read, and so kept, when it was admitted. */
  function releaseAdmitted(this: Socket) {
    releaseConnection(admission, this.remoteAddress ?? "unknown");
  }
  // Counted on the raw socket as it arrives, so pending TLS handshakes and WebSocket upgrades count too.
  const admitSocket: Admit = (socket, peer) => {
    const address = peer.remoteAddress ?? "unknown";
    const now = Date.now();
    const refusal = admitConnection(admission, address, limits, now);
    if (refusal === undefined) {
      socket.on("close", releaseAdmitted);
      return true;
    }
    metrics.connectionsRefused.inc({ reason: refusal });
    // Thousands a second are possible: a line now and then, with the count since the last one.
    const refused = (refusedSinceLog.get(refusal) ?? 0) + 1;
    refusedSinceLog.set(refusal, refused);
    if (now - (refusalLoggedAt.get(refusal) ?? Number.NEGATIVE_INFINITY) >= LOG_INTERVAL_MS) {
      logger.warn(
        { remote: address, transport: peer.transport, reason: refusal, refused },
        "refused connections unread",
      );
      refusalLoggedAt.set(refusal, now);
      refusedSinceLog.set(refusal, 0);
    }
    return false;
  };

  const onConnection: OnConnection = (stream, peer) => {
    const address = peer.remoteAddress ?? "unknown";
    const now = Date.now();
    const guard = guardReads(stream, options.maxPayloadBytes + PACKET_OVERHEAD_BYTES, (error) => {
      metrics.messagesRefused.inc({ reason: "too_large" });
      logger.warn(
        { remote: address, announced: error.announced },
        "closed a connection sending an oversized packet",
      );
    });
    peers.set(stream, { address, arrivedAt: now, guard });
    const client = broker.handle(stream);
    // aedes checks a filter's depth before authorizeSubscribe and closes the connection on a deep one; a
    // placeholder it accepts, marked, lets authorizeSubscribe answer 0x80 as for any refused filter instead.
    const parser = (client as unknown as { _parser?: NodeJS.EventEmitter })._parser;
    parser?.prependListener("packet", onPacket);
  };

  /** Sees each packet a connection's parser reads before aedes does; aedes gives each parser its client. */
  function onPacket(
    this: { client: Client },
    packet: { cmd: string; messageId?: number; subscriptions?: Subscription[] },
  ) {
    if (packet.cmd === "puback") acknowledged(this.client, packet.messageId);
    if (packet.cmd !== "subscribe" || packet.subscriptions === undefined) return;
    packet.subscriptions.forEach((sub, i) => {
      if (topicLevels(sub.topic) <= MAX_TOPIC_LEVELS) return;
      tooDeep.add(sub);
      // Unique per position: aedes merges equal filters of one SUBSCRIBE.
      sub.topic = `$too-deep/${i}`;
    });
  }

  const sweep = setInterval(() => {
    const now = Date.now();
    forgetExpiredFailures(admission, now);
    for (const [deviceId, share] of shares) {
      if (!connections.has(deviceId) && !queues.has(deviceId) && isIdle(share, limits, now))
        shares.delete(deviceId);
    }
  }, SWEEP_INTERVAL_MS);
  sweep.unref();

  try {
    listeners = await startListeners(options.listen, onConnection, admitSocket);
  } catch (error) {
    clearInterval(sweep);
    // aedes's heartbeat timers would keep the process alive after a failed start.
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    throw error;
  }
  const port = Object.values(listeners.ports)[0] as number;

  return {
    port,
    ports: listeners.ports,
    connectedDevices: () => connections.size,
    async retainedTopics() {
      const topics: string[] = [];
      for await (const packet of persistence.createRetainedStreamCombi(["#"])) topics.push(packet.topic);
      return topics.sort();
    },
    publish: (topic, payload) =>
      new Promise<void>((resolve, reject) =>
        broker.publish(
          { cmd: "publish", topic, payload: Buffer.from(payload), qos: 1, retain: false, dup: false },
          (error) => (error ? reject(error) : resolve()),
        ),
      ),
    onDeviceReady(listener) {
      readyListeners.add(listener);
      return () => readyListeners.delete(listener);
    },
    sendCommand(deviceId, commandId, payload) {
      const client = ready.get(deviceId);
      if (client === undefined || client.closed) return Promise.resolve(false);
      const topic = commandTopic(deviceId, commandId);
      if (!client.clean) {
        // Queued in the session's store by aedes, which then reports the PUBACK with the packet ("ack").
        const packet = {
          cmd: "publish" as const,
          topic,
          payload: Buffer.from(payload),
          qos: 1 as const,
          retain: false,
          dup: false,
        };
        return new Promise<boolean>((resolve) => client.publish(packet, (error) => resolve(!error)));
      }
      let sentOn = unacked.get(client);
      if (sentOn === undefined) {
        sentOn = { nextId: 1, commands: new Map() };
        unacked.set(client, sentOn);
      }
      // A packet id of our own [MQTT-2.3.1-2]: a device receives QoS 1 only from commands (its errors come QoS 0).
      const messageId = sentOn.nextId;
      sentOn.nextId = messageId >= 65_535 ? 1 : messageId + 1;
      sentOn.commands.set(messageId, commandId);
      const packet = {
        cmd: "publish",
        topic,
        payload: Buffer.from(payload),
        qos: 1,
        retain: false,
        dup: false,
        messageId,
      };
      // client.publish would drop the packet id; deliverQoS keeps one it is given (aedes lib/qos-packet.js).
      const deliver = (client as unknown as { deliverQoS: (p: typeof packet, cb: () => void) => void })
        .deliverQoS;
      return new Promise<boolean>((resolve) =>
        deliver(packet, () => {
          // aedes reports a failed write as the client's error, not here: a closed client got nothing.
          const delivered = !client.closed;
          if (!delivered) sentOn.commands.delete(messageId);
          resolve(delivered);
        }),
      );
    },
    onDelivered(listener) {
      deliveredListeners.add(listener);
      return () => deliveredListeners.delete(listener);
    },
    isSubscribed: (deviceId) => ready.has(deviceId),
    async close() {
      clearInterval(sweep);
      const serverClosed = listeners.close();
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      if (inFlight > 0) await new Promise<void>((resolve) => (drained = resolve));
      await serverClosed;
    },
  };
}
