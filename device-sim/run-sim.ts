import { deviceKey } from "../contract/device-key.js";
import type { Logger } from "../observe/logger.js";
import { createDevice, type SimDevice } from "./device.js";
import { buildFleet } from "./fleet.js";
import type { SimChannel } from "./models/index.js";
import { type ConnectDevice, connectDevice, type DeviceLink } from "./transport.js";

export type SimOptions = {
  brokerUrl: string;
  secret: string;
  devices: number;
  seed: number;
  intervalMs: number;
  /** Stop on its own after this long. */
  durationMs?: number;
  logger: Logger;
  /** Model time per tick is intervalMs × speed: faults and print jobs come sooner; ts stays the wall clock. */
  speed?: number;
  /** Connections opened at once. */
  concurrency?: number;
  clock?: () => number;
  connect?: ConnectDevice;
};

export type SimStats = {
  devices: number;
  connected: number;
  ticks: number;
  /** Messages the broker acknowledged, by channel. */
  published: Record<SimChannel, number>;
  failed: number;
  /** Reports received on the devices' errors topics. */
  refused: number;
};

export type SimHandle = {
  stop(): Promise<void>;
  stats(): SimStats;
  /** Settles once the simulator has stopped, by stop() or at the end of durationMs. */
  done: Promise<void>;
};

const DEFAULTS = { speed: 1, concurrency: 10, clock: () => Date.now(), connect: connectDevice };

type Running = { device: SimDevice; link: DeviceLink; timer: NodeJS.Timeout | undefined };

/** Runs `work` over `items`, at most `limit` at a time; stops starting new work after the first failure. */
async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  const queue = items.values();
  let failure: { error: unknown } | undefined;
  // The workers share one iterator, so each item is taken once.
  const worker = async () => {
    for (const item of queue) {
      if (failure !== undefined) return;
      try {
        await work(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure.error;
}

/** Connects a simulated fleet and keeps it talking until stopped. Rejects when a device can't connect. */
export async function runSim(options: SimOptions): Promise<SimHandle> {
  const o = { ...DEFAULTS, ...options };
  const log = o.logger.child({ component: "device-sim" });
  const now = o.clock();
  const devices = buildFleet({ devices: o.devices, seed: o.seed }).map((spec) =>
    createDevice(spec, o.seed, now),
  );
  const running: Running[] = [];
  const stats: SimStats = {
    devices: devices.length,
    connected: 0,
    ticks: 0,
    published: { hello: 0, telemetry: 0, fault: 0, event: 0 },
    failed: 0,
    refused: 0,
  };

  const closeAll = () =>
    eachLimited(running.splice(0), o.concurrency, async ({ link, timer }) => {
      clearInterval(timer);
      await link
        .close()
        .catch((error: unknown) => log.warn({ err: error, deviceId: link.deviceId }, "close failed"));
      stats.connected -= 1;
    });

  try {
    await eachLimited(devices, o.concurrency, async (device) => {
      const link = await o.connect({
        brokerUrl: o.brokerUrl,
        deviceId: device.id,
        key: deviceKey(o.secret, device.id),
        hello: () => device.hello,
        logger: log,
        onDeviceError: () => {
          stats.refused += 1;
        },
      });
      running.push({ device, link, timer: undefined });
      stats.connected += 1;
    });
  } catch (error) {
    await closeAll();
    throw error;
  }
  log.info({ devices: devices.length, broker: o.brokerUrl }, "fleet connected");

  let stopping: Promise<void> | undefined;
  const tick = async ({ device, link }: Running) => {
    if (stopping !== undefined) return;
    const messages = device.tick({ now: o.clock(), elapsedMs: o.intervalMs * o.speed });
    stats.ticks += 1;
    for (const message of messages) {
      try {
        await link.publish(message);
        stats.published[message.channel] += 1;
      } catch (error) {
        stats.failed += 1;
        log.warn({ err: error, deviceId: device.id, channel: message.channel }, "publish failed");
      }
    }
  };

  // Spread the devices over the interval so the broker sees a steady stream, not a burst.
  running.forEach((entry, index) => {
    const phase = Math.floor((index * o.intervalMs) / running.length);
    entry.timer = setTimeout(() => {
      void tick(entry);
      entry.timer = setInterval(() => void tick(entry), o.intervalMs).unref();
    }, phase).unref();
  });

  let resolveDone: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    resolveDone = resolve;
  });
  let durationTimer: NodeJS.Timeout | undefined;
  const stop = () => {
    stopping ??= (async () => {
      clearTimeout(durationTimer);
      await closeAll();
      log.info({ ...stats, published: { ...stats.published } }, "fleet stopped");
      resolveDone();
    })();
    return stopping;
  };
  if (o.durationMs !== undefined) durationTimer = setTimeout(() => void stop(), o.durationMs).unref();

  return { stop, stats: () => ({ ...stats, published: { ...stats.published } }), done };
}
