import { createRequire } from "node:module";
import { Readable } from "node:stream";
import type { Redis, RedisOptions } from "ioredis";
import mqemitterRedis from "mqemitter-redis";
import { WEEK_MS } from "../contract/time.js";
import { DEVICE_ID_PATTERN, parseDeviceTopic, TOPIC_ROOT } from "../contract/topics.js";
import type { Logger } from "../observe/logger.js";
import type { BrokerState } from "./start-broker.js";

// Several brokers' shared state in Redis (aedes-persistence-redis, mqemitter-redis): a device connected to
// one broker gets what is published through another, and its session outlives the broker it was on.
// One Redis (or one Redis database) per fieldq: the emitter's pub/sub channels are the MQTT topics themselves,
// and Redis pub/sub ignores the database number, so two fieldq deployments on one Redis would hear each other.

export type SharedState = BrokerState & { close(): Promise<void> };

export type SharedStateOptions = {
  /** How long the start waits for Redis before it fails. */
  connectTimeoutMs?: number;
  /** Messages queued for a persistent session that go out when it connects again (the rest on later ones). */
  maxSessionDelivery?: number;
  /**
   * How long a message queued for an absent persistent session is kept: a command lives a week at most, and an
   * alert subscriber that never comes back must not fill Redis.
   */
  queuedTtlMs?: number;
};

const DEFAULTS = { connectTimeoutMs: 10_000, maxSessionDelivery: 1000, queuedTtlMs: WEEK_MS };

type Emit = (message: { topic: string }, done?: (error?: Error) => void) => void;
/** mqemitter-redis's connections and its emitter within the process, which its typings leave out. */
type RedisEmitter = ReturnType<typeof mqemitterRedis> & {
  pubConn: Redis;
  subConn: Redis;
  state: NodeJS.EventEmitter;
  emit: Emit;
  _emit: Emit;
  close(done: () => void): void;
  /** MQEmitter's own close, which mqemitter-redis's calls once its connections have ended. */
  _close(done: () => void): void;
  closing: boolean;
};

/**
 * What devices publish (their uplinks and command results) has no subscriber on any broker: no device may
 * subscribe to them and the alert account only to fieldq/alerts/# (broker/acl.ts). Such a publish stays in its
 * process instead of costing a Redis PUBLISH per message; the rest (commands, errors, alerts, aedes's $SYS
 * topics) goes through Redis to every broker.
 */
export function staysLocal(topic: string): boolean {
  const channel = parseDeviceTopic(topic)?.channel;
  return channel !== undefined && channel !== "cmd" && channel !== "errors";
}

/** aedes-persistence-redis's callback layer; destroy() ends its Redis connection. */
type RedisPersistence = {
  destroy(): Promise<void>;
  createRetainedStreamCombi(patterns: string[]): Readable;
};
// A CommonJS module without typings.
const createPersistence = createRequire(import.meta.url)("aedes-persistence-redis") as (
  options: RedisOptions & { conn: Redis; maxSessionDelivery: number; packetTTL: () => number },
) => RedisPersistence;

/** The only channels a retained message can be on: the broker clears the flag of any other publish. */
const RETAINED_CHANNELS = ["hello", "status"];

/**
 * Whether a subscription filter could match a retained message, which can only be on fq/v1/{deviceId}/hello
 * or /status (broker/start-broker.ts authorizePublish). A device's own filters (its commands, its errors) and the
 * alert account's fieldq/alerts/# never can.
 */
export function mayMatchRetained(filter: string): boolean {
  const levels = filter.split("/");
  const root = TOPIC_ROOT.split("/");
  return RETAINED_CHANNELS.some((channel) => {
    // undefined: the device id's level, which any literal device id fills.
    const topic: Array<string | undefined> = [...root, undefined, channel];
    for (const [i, level] of levels.entries()) {
      if (level === "#") return true; // also the parent level [MQTT-4.7.1-2]
      if (i >= topic.length) return false;
      if (level === "+") continue;
      const expected = topic[i];
      if (expected === undefined ? !DEVICE_ID_PATTERN.test(level) : level !== expected) return false;
    }
    return levels.length === topic.length;
  });
}

/** ioredis options from redis://[user:password@]host[:port][/db] (rediss:// for TLS). */
export function redisOptions(redisUrl: string): RedisOptions {
  const url = new URL(redisUrl);
  if (url.protocol !== "redis:" && url.protocol !== "rediss:")
    throw new Error(`FIELDQ_REDIS_URL: ${url.protocol} is not redis: or rediss:`);
  const db = url.pathname.replace(/^\//, "");
  if (db !== "" && !/^\d+$/.test(db)) throw new Error(`FIELDQ_REDIS_URL: database ${db} is not a number`);
  return {
    host: url.hostname.replace(/^\[|\]$/g, "") || "127.0.0.1",
    port: url.port === "" ? 6379 : Number(url.port),
    ...(url.username === "" ? {} : { username: decodeURIComponent(url.username) }),
    ...(url.password === "" ? {} : { password: decodeURIComponent(url.password) }),
    ...(db === "" ? {} : { db: Number(db) }),
    ...(url.protocol === "rediss:" ? { tls: {} } : {}),
  };
}

/** The URL without its password, for logs. */
const forLog = (redisUrl: string) => {
  const url = new URL(redisUrl);
  if (url.password !== "") url.password = "***";
  return url.toString();
};

export async function openSharedState(
  redisUrl: string,
  logger: Logger,
  options: SharedStateOptions = {},
): Promise<SharedState> {
  const o = Object.assign({}, DEFAULTS, options);
  const where = forLog(redisUrl);
  const mq = mqemitterRedis({
    ...redisOptions(redisUrl),
    // aedes's emitter: MQTT wildcards, and "a/#" matches "a" [MQTT-4.7.1-3].
    matchEmptyLevels: true,
  }) as RedisEmitter;
  const emitShared = mq.emit.bind(mq);
  const emitLocal = mq._emit.bind(mq);
  mq.emit = (message, done) => (staysLocal(message.topic) ? emitLocal : emitShared)(message, done);
  // mqemitter-redis closes with QUIT and waits for both connections to end, which a connection retrying an
  // absent Redis never does: then they are dropped and the emitter closed at once, so a broker stops while
  // Redis is away.
  const closeEmitter = mq.close.bind(mq);
  mq.close = (done) => {
    if (mq.pubConn.status === "ready" && mq.subConn.status === "ready") return closeEmitter(done);
    mq.closing = true;
    mq.pubConn.disconnect();
    mq.subConn.disconnect();
    mq._close(done);
  };
  // The persistence's connection has the emitter's options (ioredis duplicate), and an error listener of ours:
  // ioredis writes an unheard error to the console.
  const conn = mq.pubConn.duplicate();
  let lastError: string | undefined;
  const onError = (error: Error) => {
    // ioredis retries on its own; one line per distinct error, not one per retry.
    if (error.message === lastError) return;
    lastError = error.message;
    logger.warn({ err: error, redis: where }, "Redis unreachable; retrying");
  };
  mq.state.on("error", onError);
  conn.on("error", onError);
  conn.on("ready", () => {
    if (lastError !== undefined) logger.info({ redis: where }, "Redis reachable again");
    lastError = undefined;
  });
  const ttlSeconds = Math.ceil(o.queuedTtlMs / 1000);
  const persistence = createPersistence({
    conn,
    maxSessionDelivery: o.maxSessionDelivery,
    packetTTL: () => ttlSeconds,
  });

  // aedes asks for the retained messages of every SUBSCRIBE, and aedes-persistence-redis answers by scanning
  // every retained message in Redis (HSCAN, ten at a time): with a hello and a status retained per device, a
  // device's SUBSCRIBE cost a round trip per five devices of the fleet. A filter that cannot match one costs
  // nothing here.
  const retained = persistence.createRetainedStreamCombi.bind(persistence);
  persistence.createRetainedStreamCombi = (patterns) => {
    const wanted = patterns.filter(mayMatchRetained);
    if (wanted.length === 0) return Readable.from([]);
    const stream = retained(wanted);
    // aedes pipes it with no error listener: a Redis failure mid-scan would end the process.
    stream.on("error", (error) => logger.warn({ err: error }, "retained messages not read from Redis"));
    return stream;
  };

  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    // aedes's close() closes the emitter; this one is for a broker that never started.
    await new Promise<void>((resolve) => mq.close(() => resolve()));
    // Before aedes's setup the persistence has nothing to unsubscribe, and with Redis away its unsubscribe
    // would wait for good: then its connection alone is ended.
    if (conn.status === "ready") await persistence.destroy().catch(() => conn.disconnect());
    else conn.disconnect();
    mq.state.off("error", onError);
  };
  /** Ends connections that never reached Redis: quit() would wait for them. */
  const abandon = () => {
    closed = true;
    for (const c of [mq.pubConn, mq.subConn, conn]) c.disconnect();
    mq.state.off("error", onError);
  };

  const connected = [mq.pubConn, mq.subConn, conn].map(
    (c) =>
      new Promise<void>((resolve) => {
        if (c.status === "ready") resolve();
        else c.once("ready", () => resolve());
      }),
  );
  let timer: NodeJS.Timeout | undefined;
  const reachable = await Promise.race([
    Promise.all(connected).then(() => true),
    new Promise<false>((resolve) => {
      timer = setTimeout(resolve, o.connectTimeoutMs, false);
    }),
  ]);
  clearTimeout(timer);
  if (!reachable) {
    abandon();
    throw new Error(
      `FIELDQ_REDIS_URL: Redis at ${where} not reachable within ${o.connectTimeoutMs} ms${lastError ? ` (${lastError})` : ""}`,
    );
  }
  logger.info({ redis: where }, "broker state shared through Redis");
  return { persistence, mq, close };
}
