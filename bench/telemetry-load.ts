import mqtt, { type IClientOptions } from "mqtt";
import { telemetryTopic } from "../contract/topics.js";

// The load of bench:ingest and bench:scale-external: many devices publishing QoS 1 single-sample telemetry,
// each with a few messages in flight, optionally paced to one even stream of msg/s.

export const benchDeviceId = (i: number) => `bench-${String(i).padStart(5, "0")}`;

export const telemetryPayload = (seq: number, ts: number) =>
  JSON.stringify({ ts, seq, metrics: { snr_margin_db: 7 + (seq % 5), crc_errors: seq } });

export type TelemetryLoad = {
  devices: number;
  /** Per device. */
  messages: number;
  /** Unacknowledged messages per device at a time. */
  inflight: number;
  /** All devices together at most this many msg/s, evenly spread; 0: as fast as acks allow. */
  rate: number;
  /** Device i's connect options (its id, credentials, protocol version). */
  connect: (i: number) => IClientOptions;
};

export type LoadRun = {
  startedAt: number;
  seconds: number;
  latenciesMs: number[];
  /** Per device, per seq (1-based): when it was published (performance.now()). */
  sentAt: Float64Array[];
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function publishTelemetry(url: string, load: TelemetryLoad): Promise<LoadRun> {
  const { devices, messages, inflight, rate } = load;
  const clients = await Promise.all(
    Array.from({ length: devices }, (_, i) =>
      mqtt.connectAsync(url, { reconnectPeriod: 0, ...load.connect(i) }),
    ),
  );
  const latenciesMs: number[] = [];
  const sentAt = Array.from({ length: devices }, () => new Float64Array(messages + 1));
  const startedAt = performance.now();
  await Promise.all(
    clients.map(async (client, i) => {
      const topic = telemetryTopic(benchDeviceId(i));
      const sent = sentAt[i] as Float64Array;
      let seq = 0;
      const worker = async () => {
        while (seq < messages) {
          const s = ++seq;
          if (rate > 0) {
            // Message s of device i is due at its slot in one even stream of rate msg/s.
            const due = startedAt + (((s - 1) * devices + i) * 1000) / rate;
            if (due > performance.now()) await sleep(due - performance.now());
          }
          const t = performance.now();
          sent[s] = t;
          await client.publishAsync(topic, telemetryPayload(s, Date.now()), { qos: 1 });
          latenciesMs.push(performance.now() - t);
        }
      };
      await Promise.all(Array.from({ length: inflight }, worker));
    }),
  );
  const seconds = (performance.now() - startedAt) / 1000;
  await Promise.all(clients.map((c) => c.endAsync()));
  return { startedAt, seconds, latenciesMs, sentAt };
}
