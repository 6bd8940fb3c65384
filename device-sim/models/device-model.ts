import type { Event, Fault, Hello, Severity, Telemetry } from "../../contract/messages.js";
import { DAY_MS, HOUR_MS } from "../../contract/time.js";
import type { UplinkChannel } from "../../contract/topics.js";
import type { Random } from "../random.js";
import type { DeviceScript } from "../script.js";

/**
 * What a device asks the transport to publish; status belongs to the transport alone. `raw` is a payload
 * that breaks the contract on purpose (a scenario's malformed devices): its body goes out as it is on the
 * topic of the channel `to`.
 */
export type SimMessage =
  | { channel: "hello"; payload: Hello }
  | { channel: "telemetry"; payload: Telemetry }
  | { channel: "fault"; payload: Fault }
  | { channel: "event"; payload: Event }
  | { channel: "raw"; to: "telemetry" | "fault" | "event"; body: string };

/** The channels of well-formed messages. */
export type SimChannel = SimMessage["channel"] & UplinkChannel;

/** `now` stamps the messages (device clock, scenario time); `elapsedMs` is how much model time the step covers. */
export type SimTime = { now: number; elapsedMs: number };

/** Which of the script's firmware pushes the device has taken, and when it tries again after a failed one. */
export type UpdateProgress = { next: number; retryAtMs: number };

/** State every model carries: who the device is, its message counter and its place in the script's pushes. */
export type BaseState = { hello: Hello; seq: number; updates: UpdateProgress };

export type Step<S> = { state: S; messages: SimMessage[] };

export const COMMAND_TYPES = ["reboot", "recalibrate", "diagnostics"] as const;
export type SimCommand = {
  id: string;
  type: (typeof COMMAND_TYPES)[number];
  args?: Record<string, string | number | boolean>;
};
export type CommandOutcome = { ok: boolean; message: string };
export type CommandStep<S> = { state: S; result: CommandOutcome; messages: SimMessage[] };

export type DeviceModel<S extends BaseState> = {
  kind: string;
  /** Metrics that only grow until the device reboots. */
  counters: readonly string[];
  /** Every fault code the model can raise; a scenario may only boost these. */
  faultCodes: readonly string[];
  init(hello: Hello, random: Random, now: number): S;
  step(state: S, random: Random, time: SimTime, script: DeviceScript): Step<S>;
  /** Runs a remote command at `now`; the model's time does not move. */
  command(state: S, command: SimCommand, random: Random, now: number): CommandStep<S>;
};

/** Whether something that happens `perHour` times per device-hour happened during `elapsedMs`. */
export function happens(random: Random, perHour: number, elapsedMs: number): boolean {
  return random.chance(1 - Math.exp((-perHour * elapsedMs) / HOUR_MS));
}

/**
 * How many times as often fault `code` happens on this device while it runs `firmware`: its proneness times
 * every boost that holds for the firmware and the code.
 */
export function faultFactor(script: DeviceScript, firmware: string, code: string): number {
  let factor = script.proneness;
  for (const boost of script.boosts) {
    const onFirmware = boost.firmware === undefined || boost.firmware === firmware;
    if (onFirmware && (boost.code === undefined || boost.code === code)) factor *= boost.factor;
  }
  return factor;
}

export const YEAR_MS = 365 * DAY_MS;

/** Hands out ts and seq for one message. */
export type Stamp = () => { ts: number; seq: number };

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

export function rebootEvent(reason: string, stamp: Stamp): SimMessage {
  return { channel: "event", payload: { ...stamp(), type: "reboot", data: { reason } } };
}

export function faultMessage(
  stamp: Stamp,
  code: string,
  severity: Severity,
  extra: Omit<Fault, "ts" | "seq" | "code" | "severity"> = {},
): SimMessage {
  return { channel: "fault", payload: { ...stamp(), code, severity, ...extra } };
}

/** How much a fault of this severity adds to what the owner remembers when asked for a rating. */
export const annoyanceOf = (severity: Severity) =>
  severity === "critical" ? 3 : severity === "error" ? 2 : 1;

/** What the owner remembers fades over about a day. */
export const faded = (annoyance: number, dtS: number) => annoyance * Math.exp(-dtS / 86_400);

/** A rating on the 0-10 scale, lower the more the owner has been put through. */
export function rating(random: Random, mean: number): number {
  return clamp(Math.round(random.normal(mean, 1.2)), 0, 10);
}

export const round1 = (value: number) => Math.round(value * 10) / 10;
export const round2 = (value: number) => Math.round(value * 100) / 100;
export const clamp = (value: number, min: number, max: number) => Math.min(max, Math.max(min, value));
