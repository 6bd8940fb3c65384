import { deviceKey } from "../contract/device-key.js";
import type { Logger } from "../observe/logger.js";
import type { SimDevice } from "./device.js";
import type { SimMessage } from "./models/index.js";
import type { ProgressSnapshot } from "./progress.js";
import { deviceOf, type FleetPlan, firstTickFrom, type TickOutcome, tickAt, ticksOf } from "./schedule.js";
import {
  type CommandAnswer,
  type CommandRequest,
  type ConnectDevice,
  connectDevice,
  type DeviceLink,
} from "./transport.js";

// Live mode: every device of a planned fleet on its own MQTT connection, ticking in (sped-up) real time.
// Scenario time runs `speed` times as fast as the wall clock from `fromMs`; device timestamps are scenario
// time. One timer drives the whole fleet (ticks in the fleet's time order), and each device's connection
// work runs on a chain of its own, so its messages leave in the order it made them.

export type SimOptions = {
  brokerUrl: string;
  secret: string;
  plan: FleetPlan;
  seed: number;
  logger: Logger;
  /** Scenario milliseconds per wall millisecond. */
  speed?: number;
  /**
   * Scenario time at which the live run begins (default plan.startMs). Devices step through the time before
   * it without publishing, so they are where a backfill of that time left them.
   */
  fromMs?: number;
  /** Connections opened at once. */
  concurrency?: number;
  /** Wall clock. */
  clock?: () => number;
  connect?: ConnectDevice;
  /** While the fleet connects. */
  onProgress?: (snapshot: ProgressSnapshot) => void;
};

export type PublishedCounts = Record<SimMessage["channel"], number>;

export type SimStats = {
  devices: number;
  connected: number;
  ticks: number;
  /** Messages the broker acknowledged, by channel; raw ones break the contract on purpose. */
  published: PublishedCounts;
  failed: number;
  /** Reports received on the devices' errors topics. */
  refused: number;
  commands: number;
  /** Devices that stopped for good (their last will told the broker). */
  silent: number;
  /** Devices in an offline spell right now. */
  offline: number;
  /** Scenario time reached, epoch ms. */
  scenarioMs: number;
};

export type SimHandle = {
  stop(): Promise<void>;
  stats(): SimStats;
  /** Settles once the simulator has stopped: by stop(), or when scenario time reaches the plan's end. */
  done: Promise<void>;
};

const DEFAULTS = { speed: 1, concurrency: 50, clock: () => Date.now(), connect: connectDevice };

const STOP_WAIT_MS = 5_000;

const sleep = (ms: number) =>
  new Promise<void>((resolve) => {
    setTimeout(resolve, ms).unref();
  });

type Presence = "online" | "offline" | "silent";

type Entry = {
  index: number;
  device: SimDevice;
  presence: Presence;
  link: DeviceLink | undefined;
  /** A connect failed: the next online tick tries again. */
  lost: boolean;
  /** The device's connection work, in order: connects, publishes, drops. */
  chain: Promise<void>;
};

export const emptyCounts = (): PublishedCounts => ({ hello: 0, telemetry: 0, fault: 0, event: 0, raw: 0 });

/** Runs `work` over `items`, at most `limit` at a time; stops starting new work after the first failure. */
export async function eachLimited<T>(
  items: Iterable<T>,
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  const queue = items[Symbol.iterator]();
  let failure: { error: unknown } | undefined;
  // The workers share one iterator, so each item is taken once.
  const worker = async () => {
    for (let next = queue.next(); !next.done; next = queue.next()) {
      if (failure !== undefined) return;
      try {
        await work(next.value);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, limit) }, worker));
  if (failure !== undefined) throw failure.error;
}

/** A device's answer to a command at scenario time `now`; one it cannot read is answered ok: false. */
export function answerCommand(
  device: SimDevice,
  commandId: string,
  request: CommandRequest,
  now: number,
): CommandAnswer | undefined {
  if (!request.ok) return device.refuseCommand(request.reason, now);
  const { type, args } = request.command;
  return device.command(args === undefined ? { id: commandId, type } : { id: commandId, type, args }, now);
}

/** Connects a planned fleet and keeps it talking until stopped. Rejects when a device can't connect. */
export async function runSim(options: SimOptions): Promise<SimHandle> {
  const o = { ...DEFAULTS, ...options };
  const { plan } = o;
  const log = o.logger.child({ component: "device-sim" });
  const fromMs = o.fromMs ?? plan.startMs;
  const stats: SimStats = {
    devices: plan.devices.length,
    connected: 0,
    ticks: 0,
    published: emptyCounts(),
    failed: 0,
    refused: 0,
    commands: 0,
    silent: 0,
    offline: 0,
    scenarioMs: fromMs,
  };
  let wallStart = o.clock();
  const scenarioNow = () => fromMs + (o.clock() - wallStart) * o.speed;

  const entries: Entry[] = plan.devices.map((_, index) => {
    const device = deviceOf(plan, index, o.seed);
    let last: TickOutcome | undefined;
    for (const { outcome } of ticksOf(device, plan, index, fromMs)) last = outcome;
    const presence: Presence = last?.silent ? "silent" : last?.online === false ? "offline" : "online";
    return { index, device, presence, link: undefined, lost: false, chain: Promise.resolve() };
  });
  stats.silent = entries.filter((e) => e.presence === "silent").length;
  stats.offline = entries.filter((e) => e.presence === "offline").length;

  const enqueue = (entry: Entry, work: () => Promise<void>) => {
    entry.chain = entry.chain.then(work).catch((error: unknown) => {
      stats.failed += 1;
      log.warn({ err: error, deviceId: entry.device.id }, "device connection work failed");
    });
  };

  const open = async (entry: Entry) => {
    const { device } = entry;
    entry.link = await o.connect({
      brokerUrl: o.brokerUrl,
      deviceId: device.id,
      key: deviceKey(o.secret, device.id),
      hello: () => device.hello,
      logger: log,
      onDeviceError: () => {
        stats.refused += 1;
      },
      onCommand: (commandId, request) => {
        if (entry.presence !== "online") return undefined;
        const answer = answerCommand(device, commandId, request, Math.round(scenarioNow()));
        if (answer !== undefined) stats.commands += 1;
        return answer;
      },
    });
    stats.connected += 1;
  };

  const publishAll = async (entry: Entry, messages: readonly SimMessage[]) => {
    const link = entry.link;
    if (messages.length === 0) return;
    if (link === undefined) {
      // Its connection could not be opened again; what it said is lost, as on a real line.
      stats.failed += messages.length;
      return;
    }
    // Sent back to back: MQTT keeps their order on the connection, and the chain waits for the acks.
    await Promise.all(
      messages.map((message) =>
        link.publish(message).then(
          () => {
            stats.published[message.channel] += 1;
          },
          (error: unknown) => {
            stats.failed += 1;
            log.debug({ err: error, deviceId: link.deviceId, channel: message.channel }, "publish failed");
          },
        ),
      ),
    );
  };

  const drop = async (entry: Entry) => {
    const link = entry.link;
    entry.link = undefined;
    if (link === undefined) return;
    stats.connected -= 1;
    await link.drop();
  };

  const tick = (entry: Entry, atMs: number) => {
    const outcome = entry.device.tick({ now: atMs, elapsedMs: plan.cadenceMs });
    stats.ticks += 1;
    const { messages } = outcome;
    if (outcome.silent) {
      entry.presence = "silent";
      stats.silent += 1;
      enqueue(entry, async () => {
        await publishAll(entry, messages);
        await drop(entry);
      });
    } else if (!outcome.online) {
      if (entry.presence === "online") {
        entry.presence = "offline";
        stats.offline += 1;
        // The line is gone: no goodbye, the broker's last will says offline.
        enqueue(entry, async () => {
          await publishAll(entry, messages);
          await drop(entry);
        });
      }
    } else {
      if (entry.presence === "offline" || entry.lost) {
        if (entry.presence === "offline") stats.offline -= 1;
        entry.presence = "online";
        entry.lost = false;
        enqueue(entry, () =>
          open(entry).catch((error: unknown) => {
            entry.lost = true;
            throw error;
          }),
        );
      }
      // Back from a spell, the device's messages start with what it buffered, oldest first.
      enqueue(entry, () => publishAll(entry, messages));
    }
  };

  // Connect the devices that are online at the start, a bounded number at a time.
  const starting = entries.filter((e) => e.presence === "online");
  let opened = 0;
  try {
    await eachLimited(starting, o.concurrency, async (entry) => {
      await open(entry);
      opened += 1;
      o.onProgress?.({ done: opened, total: starting.length, messages: 0 });
    });
  } catch (error) {
    await eachLimited(
      entries.filter((e) => e.link !== undefined),
      o.concurrency,
      async (e) => {
        await e.link?.close();
      },
    );
    throw error;
  }
  log.info({ devices: entries.length, connected: stats.connected, broker: o.brokerUrl }, "fleet connected");

  // Scenario time starts once the fleet is connected.
  wallStart = o.clock();
  const wallOf = (atMs: number) => wallStart + (atMs - fromMs) / o.speed;
  let cursor = firstTickFrom(plan, fromMs);
  let timer: NodeJS.Timeout | undefined;
  let stopping: Promise<void> | undefined;
  let resolveDone: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    resolveDone = resolve;
  });

  const advance = () => {
    cursor =
      cursor.index + 1 < entries.length
        ? { ...cursor, index: cursor.index + 1 }
        : { k: cursor.k + 1, index: 0 };
  };

  const pump = () => {
    timer = undefined;
    if (stopping !== undefined) return;
    const now = o.clock();
    for (;;) {
      const atMs = tickAt(plan, cursor.index, cursor.k);
      if (atMs >= plan.endMs || stats.silent === entries.length) {
        stats.scenarioMs = Math.min(plan.endMs, atMs);
        void stop();
        return;
      }
      if (wallOf(atMs) > now) {
        stats.scenarioMs = Math.max(stats.scenarioMs, Math.floor(scenarioNow()));
        timer = setTimeout(pump, Math.max(1, Math.ceil(wallOf(atMs) - now)));
        return;
      }
      const entry = entries[cursor.index];
      if (entry !== undefined && entry.presence !== "silent") tick(entry, atMs);
      stats.scenarioMs = atMs;
      advance();
    }
  };

  const stop = () => {
    stopping ??= (async () => {
      clearTimeout(timer);
      stats.scenarioMs = Math.min(plan.endMs, Math.max(stats.scenarioMs, Math.floor(scenarioNow())));
      // Work still waiting for a broker that went away does not hold the stop up for long.
      await Promise.race([Promise.all(entries.map((e) => e.chain)), sleep(STOP_WAIT_MS)]);
      await eachLimited(
        entries.filter((e) => e.link !== undefined),
        o.concurrency,
        async (entry) => {
          const link = entry.link;
          entry.link = undefined;
          await link
            ?.close()
            .catch((error: unknown) => log.warn({ err: error, deviceId: link.deviceId }, "close failed"));
          stats.connected -= 1;
        },
      );
      log.info({ ...stats, published: { ...stats.published } }, "fleet stopped");
      resolveDone();
    })();
    return stopping;
  };

  if (entries.length === 0) void stop();
  else pump();

  return { stop, stats: () => ({ ...stats, published: { ...stats.published } }), done };
}
