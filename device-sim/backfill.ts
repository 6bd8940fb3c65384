import { deviceKey } from "../contract/device-key.js";
import type { Hello, TelemetrySample } from "../contract/messages.js";
import type { Logger } from "../observe/logger.js";
import type { SimDevice } from "./device.js";
import type { SimMessage } from "./models/index.js";
import type { ProgressSnapshot } from "./progress.js";
import { emptyCounts, type PublishedCounts } from "./run-sim.js";
import { deviceOf, type FleetPlan, ticksOf } from "./schedule.js";
import { type ConnectDevice, connectDevice, type DeviceLink } from "./transport.js";

// Backfill: weeks of a planned fleet's history, as fast as the pipeline takes it. Each device is stepped
// through scenario time purely, when its turn comes, and flushes its history over a connection of its own,
// the way a real device empties its buffer after a long offline spell: connect with its key, publish in its
// own time order (QoS 1, a bounded number in flight), disconnect. A bounded pool of such connections cycles
// through the fleet, so memory and sockets stay bounded however many devices there are.

export type BackfillOptions = {
  brokerUrl: string;
  secret: string;
  plan: FleetPlan;
  seed: number;
  logger: Logger;
  /** Devices flushing at once, each on its own connection. */
  pool?: number;
  /** Unacknowledged messages per connection. */
  inFlight?: number;
  /** Telemetry samples per message: consecutive samples go out as one array, as a buffer flush does. */
  batch?: number;
  /** Connection attempts per device before it counts as failed. */
  attempts?: number;
  retryDelayMs?: number;
  connect?: ConnectDevice;
  onProgress?: (snapshot: ProgressSnapshot) => void;
  /** Stops taking devices; those flushing end cleanly. */
  signal?: AbortSignal;
};

export type BackfillStats = {
  devices: number;
  /** Devices whose whole history the broker acknowledged. */
  flushed: number;
  /** Devices given up after `attempts` connections, or cut short by the signal. */
  failed: number;
  /** Devices that went silent: dropped without a goodbye, so the broker sent their last will. */
  silent: number;
  /** Messages acknowledged, by channel (a telemetry array counts once). */
  published: PublishedCounts;
  samples: number;
  /** Reports received on the devices' errors topics. */
  refused: number;
  /** Connections that failed and were tried again. */
  retries: number;
};

export const BACKFILL_DEFAULTS = {
  pool: 50,
  inFlight: 100,
  batch: 50,
  attempts: 3,
  retryDelayMs: 1_000,
  connect: connectDevice,
};

/** A message with the hello its device had before it: what a new connection announces when resuming there. */
export type Outgoing = { message: SimMessage; hello: Hello };

/**
 * A device's history in its own time order, made lazily: consecutive telemetry samples (across ticks, and
 * the arrays of an offline spell's flush) packed into arrays of up to `batch`. Returns whether the device
 * went silent.
 */
export function* historyOf(
  device: SimDevice,
  plan: FleetPlan,
  index: number,
  batch: number,
): Generator<Outgoing, { silent: boolean }> {
  let samples: TelemetrySample[] = [];
  let hello = device.hello;
  let silent = false;
  function* flushSamples(): Generator<Outgoing> {
    if (samples.length === 0) return;
    const payload = samples.length === 1 ? (samples[0] as TelemetrySample) : samples;
    samples = [];
    yield { message: { channel: "telemetry", payload }, hello };
  }
  for (const { outcome } of ticksOf(device, plan, index)) {
    for (const message of outcome.messages) {
      if (message.channel === "telemetry") {
        for (const sample of Array.isArray(message.payload) ? message.payload : [message.payload]) {
          samples.push(sample);
          if (samples.length >= batch) yield* flushSamples();
        }
        continue;
      }
      yield* flushSamples();
      yield { message, hello };
      if (message.channel === "hello") hello = message.payload;
    }
    silent = outcome.silent;
  }
  yield* flushSamples();
  return { silent };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const sampleCount = (message: SimMessage) =>
  message.channel !== "telemetry" ? 0 : Array.isArray(message.payload) ? message.payload.length : 1;

/** Flushes the history of every device of the plan through a pool of connections; resolves to a summary. */
export async function runBackfill(options: BackfillOptions): Promise<BackfillStats> {
  const o = { ...BACKFILL_DEFAULTS, ...options };
  const { plan } = o;
  const log = o.logger.child({ component: "device-sim", mode: "backfill" });
  const stats: BackfillStats = {
    devices: plan.devices.length,
    flushed: 0,
    failed: 0,
    silent: 0,
    published: emptyCounts(),
    samples: 0,
    refused: 0,
    retries: 0,
  };
  let messages = 0;
  const progress = () =>
    o.onProgress?.({ done: stats.flushed + stats.failed, total: stats.devices, messages });
  const aborted = () => o.signal?.aborted === true;

  /** One device: its history over one connection, resumed on a new one after a failure. */
  const flushDevice = async (index: number) => {
    const device = deviceOf(plan, index, o.seed);
    const history = historyOf(device, plan, index, o.batch);
    // Sent but not yet acknowledged, oldest first; what a new connection sends again.
    const unacked: (Outgoing & { acked: boolean })[] = [];
    /** The hello as of the newest message made: what a new connection announces when nothing is unacked. */
    let resumeHello = device.hello;
    let ended: { silent: boolean } | undefined;

    for (let attempt = 1; ; attempt++) {
      let link: DeviceLink | undefined;
      try {
        const hello = unacked[0]?.hello ?? resumeHello;
        link = await o.connect({
          brokerUrl: o.brokerUrl,
          deviceId: device.id,
          key: deviceKey(o.secret, device.id),
          hello: () => hello,
          logger: log,
          reconnectPeriodMs: 0,
          onDeviceError: () => {
            stats.refused += 1;
          },
        });
        const current = link;
        let failure: unknown;
        let wake: (() => void) | undefined;
        const send = (entry: Outgoing & { acked: boolean }) => {
          current.publish(entry.message).then(
            () => {
              entry.acked = true;
              stats.published[entry.message.channel] += 1;
              stats.samples += sampleCount(entry.message);
              messages += 1;
              while (unacked[0]?.acked) unacked.shift();
              wake?.();
            },
            (error: unknown) => {
              failure ??= error;
              wake?.();
            },
          );
        };
        const settle = () =>
          new Promise<void>((resolve) => {
            wake = resolve;
          });

        for (const entry of unacked) if (!entry.acked) send(entry);
        while (failure === undefined && !aborted()) {
          if (unacked.length >= o.inFlight) {
            await settle();
            continue;
          }
          if (ended !== undefined) break;
          const next = history.next();
          if (next.done) {
            ended = next.value;
            break;
          }
          const entry = { ...next.value, acked: false };
          resumeHello = entry.message.channel === "hello" ? entry.message.payload : entry.hello;
          unacked.push(entry);
          send(entry);
        }
        while (failure === undefined && unacked.length > 0) await settle();
        if (failure !== undefined) throw failure;
        if (aborted() && ended === undefined) {
          await link.close();
          stats.failed += 1;
          return;
        }
        // A device that went silent never says goodbye: the broker's last will does.
        if (ended?.silent) {
          await link.drop();
          stats.silent += 1;
        } else {
          await link.close();
        }
        stats.flushed += 1;
        return;
      } catch (error) {
        await link?.drop().catch(() => {});
        if (attempt >= o.attempts || aborted()) {
          stats.failed += 1;
          log.warn({ err: error, deviceId: device.id, attempts: attempt }, "device history not flushed");
          return;
        }
        stats.retries += 1;
        log.debug({ err: error, deviceId: device.id, attempt }, "flush failed; connecting again");
        await sleep(o.retryDelayMs * attempt);
      }
    }
  };

  const queue = plan.devices.keys();
  const worker = async () => {
    for (let next = queue.next(); !next.done && !aborted(); next = queue.next()) {
      await flushDevice(next.value);
      progress();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(o.pool, plan.devices.length)) }, worker));
  log.info({ ...stats, published: { ...stats.published } }, "backfill finished");
  return stats;
}
