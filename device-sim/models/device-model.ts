import type { Event, Fault, Hello, Telemetry } from "../../contract/messages.js";
import type { UplinkChannel } from "../../contract/topics.js";
import type { Random } from "../random.js";

/** What a device model asks the transport to publish; status belongs to the transport alone. */
export type SimMessage =
  | { channel: "hello"; payload: Hello }
  | { channel: "telemetry"; payload: Telemetry }
  | { channel: "fault"; payload: Fault }
  | { channel: "event"; payload: Event };

export type SimChannel = SimMessage["channel"] & UplinkChannel;

/** `now` stamps the messages (device clock); `elapsedMs` is how much model time the step covers. */
export type SimTime = { now: number; elapsedMs: number };

/** State every model carries: who the device is and its message counter. */
export type BaseState = { hello: Hello; seq: number };

export type Step<S> = { state: S; messages: SimMessage[] };

export type DeviceModel<S extends BaseState> = {
  kind: string;
  /** Metrics that only grow until the device reboots. */
  counters: readonly string[];
  init(hello: Hello, random: Random, now: number): S;
  step(state: S, random: Random, time: SimTime): Step<S>;
};

/** Whether something that happens `perHour` times per device-hour happened during `elapsedMs`. */
export function happens(random: Random, perHour: number, elapsedMs: number): boolean {
  return random.chance(1 - Math.exp((-perHour * elapsedMs) / 3_600_000));
}

/** Hands out ts and seq for the messages of one step. */
export function stamper(seq: number, now: number) {
  let next = seq;
  return {
    stamp: () => ({ ts: now, seq: next++ }),
    get seq() {
      return next;
    },
  };
}

export const round1 = (value: number) => Math.round(value * 10) / 10;
export const clamp = (value: number, min: number, max: number) => Math.min(max, Math.max(min, value));
