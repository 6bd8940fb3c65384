import { DAY_MS, MINUTE_MS, SECOND_MS } from "../contract/time.js";

// When a failed delivery is tried again: exponential backoff with jitter, a receiver's Retry-After honoured,
// and a deadline after which the delivery gives up. A pure function: alerts/deliver.ts keeps the clock.

export type BackoffPolicy = {
  /** The first retry's delay, doubled per attempt. */
  baseMs: number;
  maxMs: number;
  /** A delivery still failing this long after it was queued gives up. */
  giveUpAfterMs: number;
};

export const DEFAULT_BACKOFF: BackoffPolicy = {
  baseMs: SECOND_MS,
  maxMs: 5 * MINUTE_MS,
  giveUpAfterMs: DAY_MS,
};

export type RetryDecision = { retry: true; atMs: number } | { retry: false };

/**
 * After failed attempt `attempt` (1 first) at nowMs of a delivery queued at queuedAtMs: the next try, or none.
 * The delay is base × 2^(attempt-1) capped at max, of which a random half is jitter (random in [0, 1)), and at
 * least the receiver's Retry-After; the last try falls on the deadline itself.
 */
export function nextRetry(
  input: {
    attempt: number;
    queuedAtMs: number;
    nowMs: number;
    random: number;
    retryAfterMs?: number | undefined;
  },
  policy: BackoffPolicy = DEFAULT_BACKOFF,
): RetryDecision {
  const deadline = input.queuedAtMs + policy.giveUpAfterMs;
  if (input.nowMs >= deadline) return { retry: false };
  const exponent = Math.min(Math.max(0, input.attempt - 1), 40);
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** exponent);
  const jittered = ceiling / 2 + (ceiling / 2) * Math.min(Math.max(input.random, 0), 1);
  const delay = Math.max(jittered, input.retryAfterMs ?? 0);
  return { retry: true, atMs: Math.min(Math.round(input.nowMs + delay), deadline) };
}

/** A Retry-After header's value (seconds or an HTTP date) as a delay from nowMs; undefined when unreadable. */
export function parseRetryAfter(value: string | null, nowMs: number): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * SECOND_MS;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs);
}
