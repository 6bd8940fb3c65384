import type { BrokerLimits } from "../config/env.js";

// One device's share of the broker: a token bucket of deviceRate tokens a second, holding at most deviceBurst,
// and a count of the messages dropped within the current minute. Rules only: the caller keeps the state and
// passes the clock, so every decision is testable without sockets or timers.

export type ShareLimits = Pick<BrokerLimits, "deviceRate" | "deviceBurst" | "floodDrops">;

/** How long drops are counted before the flood count starts again. */
export const DROP_WINDOW_MS = 60_000;
/** At most one `rate_limited` on a device's errors topic this often. */
export const NOTIFY_INTERVAL_MS = 1_000;
/** At most one log line about a device's drops this often. */
export const LOG_INTERVAL_MS = 10_000;
/** How long a device disconnected for flooding is refused when it connects again. */
export const FLOOD_COOL_DOWN_MS = 30_000;
/** The longest a device's reads are held after a drop, so that its PINGREQs still arrive in time. */
export const MAX_READ_HOLD_MS = 1_000;

export type DeviceShare = {
  /** Below 1 no message passes; below 0 it is owed to QoS 1 messages waiting for their turn. */
  tokens: number;
  refilledAt: number;
  dropWindowStart: number;
  drops: number;
  /** Drops since a message last passed: the longer a flood goes on, the longer its reads are held. */
  dropStreak: number;
  notifiedAt: number;
  loggedAt: number;
  dropsSinceLog: number;
  coolDownUntil: number;
};

export type Admission =
  | { kind: "pass" }
  /** QoS 1 and 2: acknowledge at readyAt, after the messages already waiting. */
  | { kind: "wait"; readyAt: number }
  /**
   * QoS 0 over the rate. readAgainAt: read nothing more of the device before then, so a flood waits in TCP
   * instead of being read and dropped; notify: tell the device (rate_limited); logDrops: log that
   * many drops since the last line; flood: disconnect it and refuse it for FLOOD_COOL_DOWN_MS.
   */
  | { kind: "drop"; readAgainAt: number; notify: boolean; logDrops: number | undefined; flood: boolean };

export function newShare(limits: ShareLimits, now: number): DeviceShare {
  return {
    tokens: limits.deviceBurst,
    refilledAt: now,
    dropWindowStart: now,
    drops: 0,
    dropStreak: 0,
    notifiedAt: Number.NEGATIVE_INFINITY,
    loggedAt: Number.NEGATIVE_INFINITY,
    dropsSinceLog: 0,
    coolDownUntil: Number.NEGATIVE_INFINITY,
  };
}

function refill(share: DeviceShare, limits: ShareLimits, now: number): void {
  const earned = ((now - share.refilledAt) * limits.deviceRate) / 1000;
  share.tokens = Math.min(limits.deviceBurst, share.tokens + Math.max(0, earned));
  share.refilledAt = now;
}

/** Decides what happens to one message of the device; updates the share. */
export function admit(share: DeviceShare, qos: number, limits: ShareLimits, now: number): Admission {
  refill(share, limits, now);
  if (share.tokens >= 1) {
    share.tokens -= 1;
    share.dropStreak = 0;
    return { kind: "pass" };
  }
  if (qos > 0) {
    share.dropStreak = 0;
    // Take the token on credit: the debt says when it has been earned, so waiting messages keep their order.
    share.tokens -= 1;
    return { kind: "wait", readyAt: now + (-share.tokens * 1000) / limits.deviceRate };
  }
  share.dropStreak += 1;
  // Until the next token, and a token's time more per message dropped in a row before this one: a device
  // over its rate is read about as fast as its rate, however many messages one read brought.
  const holdTokens = 1 - share.tokens + (share.dropStreak - 1);
  const readAgainAt = now + Math.min(MAX_READ_HOLD_MS, (holdTokens * 1000) / limits.deviceRate);
  if (coolingDown(share, now)) {
    // Disconnected already; the rest of what it had sent goes quietly.
    return { kind: "drop", readAgainAt, notify: false, logDrops: undefined, flood: false };
  }
  if (now - share.dropWindowStart >= DROP_WINDOW_MS) {
    share.dropWindowStart = now;
    share.drops = 0;
  }
  share.drops += 1;
  share.dropsSinceLog += 1;
  const notify = now - share.notifiedAt >= NOTIFY_INTERVAL_MS;
  if (notify) share.notifiedAt = now;
  let logDrops: number | undefined;
  if (now - share.loggedAt >= LOG_INTERVAL_MS) {
    share.loggedAt = now;
    logDrops = share.dropsSinceLog;
    share.dropsSinceLog = 0;
  }
  const flood = share.drops >= limits.floodDrops;
  if (flood) {
    share.coolDownUntil = now + FLOOD_COOL_DOWN_MS;
    share.drops = 0;
  }
  return { kind: "drop", readAgainAt, notify: notify || flood, logDrops, flood };
}

/** Gives back the tokens of waiting messages that will never be acknowledged (their connection closed). */
export function refund(share: DeviceShare, count: number, limits: ShareLimits): void {
  share.tokens = Math.min(limits.deviceBurst, share.tokens + count);
}

export function coolingDown(share: DeviceShare, now: number): boolean {
  return now < share.coolDownUntil;
}

/** Nothing of the share matters any more: forgetting it gives the device exactly what a new share would. */
export function isIdle(share: DeviceShare, limits: ShareLimits, now: number): boolean {
  const tokens = share.tokens + ((now - share.refilledAt) * limits.deviceRate) / 1000;
  return (
    tokens >= limits.deviceBurst && !coolingDown(share, now) && now - share.dropWindowStart >= DROP_WINDOW_MS
  );
}
