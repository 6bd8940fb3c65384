import type { BrokerLimits } from "../config/env.js";

// Which connections the broker takes at all, decided when one arrives and before any of its bytes is read:
// open connections in all and per address, and addresses that keep failing to authenticate. Rules only: the
// caller keeps the state and passes the clock.

export type AdmissionLimits = Pick<
  BrokerLimits,
  "maxConnections" | "maxConnectionsPerIp" | "authFailuresPerMinute"
>;

export type ConnectionRefusal = "per_ip" | "global" | "auth_throttled";

/** Authentication failures are counted per address in windows of this length. */
export const AUTH_WINDOW_MS = 60_000;

type Failures = { windowStart: number; count: number };

export type AdmissionState = {
  total: number;
  open: Map<string, number>;
  failures: Map<string, Failures>;
};

export function newAdmission(): AdmissionState {
  return { total: 0, open: new Map(), failures: new Map() };
}

function currentFailures(state: AdmissionState, address: string, now: number): Failures | undefined {
  const failures = state.failures.get(address);
  if (failures === undefined) return undefined;
  if (now - failures.windowStart < AUTH_WINDOW_MS) return failures;
  state.failures.delete(address);
  return undefined;
}

/** Whether the address has used up its failed CONNECTs of the current minute. */
export function authThrottled(
  state: AdmissionState,
  address: string,
  limits: AdmissionLimits,
  now: number,
): boolean {
  return (currentFailures(state, address, now)?.count ?? 0) >= limits.authFailuresPerMinute;
}

/** Counts the connection as open, or says why it is refused (then nothing is counted). */
export function admitConnection(
  state: AdmissionState,
  address: string,
  limits: AdmissionLimits,
  now: number,
): ConnectionRefusal | undefined {
  if (authThrottled(state, address, limits, now)) return "auth_throttled";
  const open = state.open.get(address) ?? 0;
  if (open >= limits.maxConnectionsPerIp) return "per_ip";
  if (state.total >= limits.maxConnections) return "global";
  state.open.set(address, open + 1);
  state.total += 1;
  return undefined;
}

/** A connection admitted earlier has closed. */
export function releaseConnection(state: AdmissionState, address: string): void {
  const open = state.open.get(address) ?? 0;
  if (open <= 1) state.open.delete(address);
  else state.open.set(address, open - 1);
  state.total = Math.max(0, state.total - 1);
}

/** Counts a failed CONNECT; true when it is the one that starts throttling the address. */
export function recordAuthFailure(
  state: AdmissionState,
  address: string,
  limits: AdmissionLimits,
  now: number,
): boolean {
  const failures = currentFailures(state, address, now) ?? { windowStart: now, count: 0 };
  failures.count += 1;
  state.failures.set(address, failures);
  return failures.count === limits.authFailuresPerMinute;
}

/** Drops failure counts whose minute has passed, so addresses that failed once do not accumulate. */
export function forgetExpiredFailures(state: AdmissionState, now: number): void {
  for (const [address, failures] of state.failures) {
    if (now - failures.windowStart >= AUTH_WINDOW_MS) state.failures.delete(address);
  }
}
