import { createHash } from "node:crypto";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import type { DeviceError } from "../contract/messages.js";
import { err, ok, type Result } from "../contract/result.js";
import {
  commandResultTopic,
  errorsTopic,
  topicOwner,
  UPLINK_CHANNELS,
  uplinkTopic,
} from "../contract/topics.js";
import type { Logger } from "../observe/logger.js";
import type { Metrics } from "../observe/metrics.js";
import type { IngestOutcome } from "./ingest.js";

// `fieldq ingest`: the devices' messages come from an external MQTT 5 broker through a shared subscription,
// and each is acknowledged to that broker only once the ingest has journaled it (fsync). A message not
// acknowledged stays with this consumer's session, and the broker sends it again when the session resumes.

export type Receive = (
  deviceId: string,
  topic: string,
  payload: Buffer,
  source: "device",
) => Promise<IngestOutcome>;

export type ExternalConsumerOptions = {
  url: string;
  username?: string | undefined;
  password?: string | undefined;
  /** The session's name: an ingest restarted with the same id gets the messages it had not acknowledged. */
  clientId: string;
  /** The shared subscription's group: every ingest of one fleet uses the same. */
  group: string;
  receive: Receive;
  logger: Logger;
  metrics: Metrics;
  /** Messages the broker may have in flight to this consumer; the journal commits them in groups. */
  receiveMaximum?: number;
  /** How long the broker keeps the session (and queues its share) while this consumer is away. */
  sessionExpirySeconds?: number;
  /** How long to stay away after the journal was full before taking messages again; doubles while it stays full. */
  fullPauseMs?: number;
  reconnectMs?: number;
};

export const DEFAULT_RECEIVE_MAXIMUM = 1_000;
export const DEFAULT_SESSION_EXPIRY_SECONDS = 7 * 24 * 3600;
const DEFAULT_FULL_PAUSE_MS = 1_000;
/** A journal that stays full (InfluxDB away) is tried this often at most: each try decodes a resent burst. */
const MAX_FULL_PAUSE_MS = 30_000;
const DEFAULT_RECONNECT_MS = 1_000;
/** Leaving the group, this long without a message means the broker has sent all it had queued here. */
const QUIET_MS = 300;
/** A broker that stays unreachable is reported at most this often. */
const UNREACHABLE_LOG_MS = 30_000;

/** The filters of a device's uplink (what a device publishes), shared within the group. */
export function shareFilters(group: string): string[] {
  const any = "+";
  return [...UPLINK_CHANNELS.map((channel) => uplinkTopic(any, channel)), commandResultTopic(any, any)].map(
    (filter) => `$share/${group}/${filter}`,
  );
}

/**
 * The client id when none is configured: the host and the data folder, so the same ingest started again on
 * the same folder resumes its session, and two ingests on one host differ.
 */
export function defaultClientId(host: string, dataDir: string): string {
  const folder = createHash("sha256").update(dataDir).digest("hex").slice(0, 8);
  const name = host.replace(/[^A-Za-z0-9_.-]/g, "").slice(0, 32);
  return `fieldq-ingest-${name}-${folder}`;
}

const BROKER_PROTOCOLS = ["mqtt:", "mqtts:", "ws:", "wss:"];

/** The broker's URL, checked before anything connects: mqtt://, mqtts://, ws:// or wss:// with a host. */
export function parseBrokerUrl(url: string): Result<URL, string> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return err(`"${url}" is not a URL (mqtt://host:1883)`);
  }
  if (!BROKER_PROTOCOLS.includes(parsed.protocol))
    return err(`"${url}": the broker URL starts with mqtt://, mqtts://, ws:// or wss://`);
  if (parsed.hostname === "") return err(`"${url}" names no host`);
  return ok(parsed);
}

export type ConsumerCounts = {
  /** Messages acknowledged to the broker: journaled, or refused with their refusal journaled. */
  acknowledged: number;
  /** Of the messages taken, those the broker marked as sent before (DUP): a session's resent in-flight ones. */
  redelivered: number;
};

export type ExternalConsumer = {
  /** Messages handed to the ingest and not yet answered. */
  inFlight(): number;
  counts(): ConsumerCounts;
  /** Resolves once connected and subscribed; on every reconnect a new promise. */
  subscribed(): Promise<void>;
  /**
   * Stops taking messages, acknowledges those being journaled, and disconnects. The session stays with the
   * broker, which keeps this consumer's share for it (Mosquitto 2.0 does), so nothing is lost while no
   * member of the group runs (a restart of all of them).
   *
   * With leave, the consumer leaves the group for good: it unsubscribes, journals and acknowledges what the
   * broker had queued for it until nothing has come for a moment, and ends the session. Should a message
   * stay unacknowledged (journal full, broker away), the session is kept instead.
   */
  close(options?: { leave?: boolean }): Promise<void>;
};

/** MQTT.js's packet writer, which its own handlers use; not in its typings. */
type PacketWriter = { _sendPacket(packet: { cmd: "puback"; messageId: number; reasonCode: number }): void };

/** Handed to MQTT.js instead of an acknowledgement: it lets the reader go on and sends no PUBACK. */
const DEFERRED = new Error("PUBACK deferred until the journal has the message");

export function startExternalConsumer(options: ExternalConsumerOptions): ExternalConsumer {
  const { logger, metrics } = options;
  const receiveMaximum = options.receiveMaximum ?? DEFAULT_RECEIVE_MAXIMUM;
  const firstPauseMs = options.fullPauseMs ?? DEFAULT_FULL_PAUSE_MS;
  let pauseMs = firstPauseMs;
  const filters = shareFilters(options.group);
  /** Bumped on every connection: a PUBACK belongs to the connection its PUBLISH came on. */
  let connection = 0;
  let inFlight = 0;
  let lastMessageAt = 0;
  /** A message of this connection left unacknowledged: the session must outlive it. */
  let leftUnacknowledged = false;
  const counts: ConsumerCounts = { acknowledged: 0, redelivered: 0 };
  let closing = false;
  let pausing = false;
  let resumeTimer: NodeJS.Timeout | undefined;
  const idleWaiters: (() => void)[] = [];
  let unreachableSince: number | undefined;
  let unreachableLoggedAt = 0;
  let onSubscribed: (() => void) | undefined;
  let subscribedNow = new Promise<void>((resolve) => {
    onSubscribed = resolve;
  });

  const clientOptions: IClientOptions = {
    clientId: options.clientId,
    protocolVersion: 5,
    clean: false,
    resubscribe: false,
    reconnectPeriod: options.reconnectMs ?? DEFAULT_RECONNECT_MS,
    // A refused CONNECT (a password not set up yet) is retried like an unreachable broker.
    reconnectOnConnackError: true,
    connectTimeout: 10_000,
    properties: {
      sessionExpiryInterval: options.sessionExpirySeconds ?? DEFAULT_SESSION_EXPIRY_SECONDS,
      receiveMaximum,
    },
    ...(options.username !== undefined ? { username: options.username } : {}),
    ...(options.password !== undefined ? { password: options.password } : {}),
    // MQTT.js reads the next PUBLISH only once this one's handler has called back, so holding the callback
    // until the fsync would commit one message per fsync. The handler lets go at once (DEFERRED) and
    // acknowledge() sends the PUBACK when the journal has the message.
    customHandleAcks: (topic, payload, packet: { messageId?: number; dup?: boolean }, done) => {
      done(DEFERRED);
      lastMessageAt = Date.now();
      if (closing || pausing) {
        leftUnacknowledged = true; // the broker sends it again on the next connection
        return;
      }
      if (packet.dup) counts.redelivered += 1;
      void handle(topic, payload, packet.messageId, connection);
    },
  };
  const client: MqttClient = mqtt.connect(options.url, clientOptions);

  function acknowledge(messageId: number | undefined, on: number) {
    // On a later connection this packet id may name another message; the broker resends this one instead.
    if (messageId === undefined || on !== connection || !client.connected) return;
    (client as unknown as PacketWriter)._sendPacket({ cmd: "puback", messageId, reasonCode: 0 });
    counts.acknowledged += 1;
  }

  function tellDevice(deviceId: string, error: DeviceError) {
    client.publish(errorsTopic(deviceId), JSON.stringify(error), { qos: 0 }, () => {});
  }

  /** Resolves once no message is being journaled. */
  function whenIdle(): Promise<void> {
    if (inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => idleWaiters.push(resolve));
  }

  /**
   * The journal is full: take nothing more, let the messages being journaled finish and be acknowledged (each
   * pause so stores what fitted), then stay away a while and resume the session, whose unacknowledged
   * messages the broker then sends again.
   */
  function pause() {
    if (pausing || closing) return;
    pausing = true;
    logger.warn({ pauseMs }, "journal full: taking no messages for a while; the broker keeps them");
    void whenIdle().then(() => {
      if (closing) return;
      // Not unref'd: while away from the broker nothing else may keep the process running.
      client.end(true, {}, () => {
        resumeTimer = setTimeout(() => {
          pausing = false;
          if (!closing) client.reconnect();
        }, pauseMs);
        pauseMs = Math.min(2 * pauseMs, MAX_FULL_PAUSE_MS);
      });
    });
  }

  /** Resolves once nothing is being journaled and no message has come for QUIET_MS. */
  async function settled() {
    for (;;) {
      const quietFor = Date.now() - lastMessageAt;
      if (inFlight === 0 && quietFor >= QUIET_MS) return;
      await new Promise((resolve) => setTimeout(resolve, Math.max(10, QUIET_MS - quietFor)));
    }
  }

  async function handle(topic: string, payload: Buffer, messageId: number | undefined, on: number) {
    inFlight += 1;
    try {
      const deviceId = topicOwner(topic);
      if (deviceId === undefined) {
        // Nobody to record it for or to tell: the filters match only device topics, so a bad id.
        metrics.messagesRefused.inc({ reason: "unknown_device" });
        acknowledge(messageId, on);
        return;
      }
      const outcome = await options.receive(deviceId, topic, payload, "device");
      switch (outcome.kind) {
        case "accepted":
          acknowledge(messageId, on);
          pauseMs = firstPauseMs;
          return;
        case "refused":
          // Its refusal is journaled and a retry cannot mend it.
          acknowledge(messageId, on);
          tellDevice(deviceId, { ts: Date.now(), topic, reason: outcome.reason, message: outcome.message });
          return;
        case "unavailable":
          leftUnacknowledged = true;
          metrics.messagesRefused.inc({ reason: "journal_full" });
          pause();
          return;
      }
    } catch (error) {
      leftUnacknowledged = true;
      logger.error({ err: error, topic }, "could not journal a message; the broker sends it again");
      pause();
    } finally {
      inFlight -= 1;
      if (inFlight === 0) for (const resolve of idleWaiters.splice(0)) resolve();
    }
  }

  client.on("connect", (connack) => {
    connection += 1;
    leftUnacknowledged = false;
    if (unreachableSince !== undefined)
      logger.info({ url: options.url, awayMs: Date.now() - unreachableSince }, "broker reachable again");
    unreachableSince = undefined;
    logger.info(
      { url: options.url, clientId: options.clientId, sessionPresent: connack.sessionPresent },
      "connected to the external broker",
    );
    // Subscribed again on every connection: a broker that lost the session (restart without persistence)
    // still routes the share here.
    const on = connection;
    client.subscribe(filters, { qos: 1 }, (error, granted) => {
      // A connection that closed meanwhile (a pause, the broker gone) subscribes again on the next one.
      if (on !== connection || !client.connected) return;
      const refused = (granted ?? []).filter((g) => g.qos > 1);
      if (error || refused.length > 0) {
        logger.error(
          { err: error, refused: refused.map((g) => g.topic) },
          "the external broker refused the shared subscription (its ACL must allow it to the ingest's user)",
        );
        return;
      }
      logger.info({ filters, group: options.group }, "subscribed to the devices' topics");
      onSubscribed?.();
    });
  });
  /** Why the last attempt failed, if the broker answered at all (a refused CONNECT carries a reason code). */
  let lastError: Error | undefined;
  client.on("close", () => {
    if (closing || pausing) return;
    subscribedNow = new Promise<void>((resolve) => {
      onSubscribed = resolve;
    });
    const now = Date.now();
    unreachableSince ??= now;
    if (now - unreachableLoggedAt >= UNREACHABLE_LOG_MS) {
      unreachableLoggedAt = now;
      logger.warn(
        { url: options.url, retryMs: clientOptions.reconnectPeriod, err: lastError },
        "external broker not reachable or refused the connection; retrying",
      );
    }
    lastError = undefined;
  });
  client.on("error", (error) => {
    if (error !== DEFERRED) lastError = error;
  });

  return {
    inFlight: () => inFlight,
    counts: () => ({ ...counts }),
    subscribed: () => subscribedNow,
    async close({ leave = false } = {}) {
      // Out of the group first: the broker routes nothing new here, and what it had queued arrives and is
      // acknowledged before the session ends.
      const leaving = leave && client.connected && !pausing;
      if (leaving) {
        await client.unsubscribeAsync(filters).catch(() => undefined);
        await settled();
      }
      closing = true;
      clearTimeout(resumeTimer);
      await whenIdle();
      // A session that still holds a message of ours is kept, so that a restart with this id takes it up.
      const done = leaving && client.connected && !leftUnacknowledged;
      await client.endAsync(false, done ? { properties: { sessionExpiryInterval: 0 } } : {});
    },
  };
}
