import { describe, expect, it } from "vitest";
import { DEFAULT_BACKOFF, nextRetry, parseRetryAfter } from "../../alerts/backoff.js";

const T0 = Date.UTC(2026, 0, 1);
const SECOND = 1000;
const MINUTE = 60 * SECOND;
const DAY = 24 * 60 * MINUTE;

const delayAfter = (attempt: number, random: number, retryAfterMs?: number) => {
  const decision = nextRetry({ attempt, queuedAtMs: T0, nowMs: T0, random, retryAfterMs });
  if (!decision.retry) throw new Error("gave up");
  return decision.atMs - T0;
};

describe("alert delivery backoff", () => {
  it("doubles from 1 s, each delay between half and all of its ceiling", () => {
    for (let attempt = 1; attempt <= 8; attempt++) {
      const ceiling = SECOND * 2 ** (attempt - 1);
      expect(delayAfter(attempt, 0)).toBe(ceiling / 2);
      expect(delayAfter(attempt, 0.999999)).toBeCloseTo(ceiling, -1);
      expect(delayAfter(attempt, 0.5)).toBe((ceiling * 3) / 4);
    }
  });

  it("never waits more than 5 minutes between tries however many failed", () => {
    for (const attempt of [10, 20, 1000]) {
      expect(delayAfter(attempt, 0.999999)).toBeLessThanOrEqual(5 * MINUTE);
      expect(delayAfter(attempt, 0)).toBe(2.5 * MINUTE);
    }
  });

  it("spreads the retries of receivers that failed together", () => {
    const delays = new Set([0.1, 0.3, 0.5, 0.7, 0.9].map((r) => delayAfter(6, r)));
    expect(delays.size).toBe(5);
  });

  it("waits at least as long as the receiver's Retry-After", () => {
    expect(delayAfter(1, 0, 90 * SECOND)).toBe(90 * SECOND);
    expect(delayAfter(3, 0.5, 1 * SECOND)).toBe(3 * SECOND);
  });

  it("makes its last try on the deadline and gives up 24 h after the delivery was queued", () => {
    const near = nextRetry({ attempt: 50, queuedAtMs: T0, nowMs: T0 + DAY - 10 * SECOND, random: 0.9 });
    expect(near).toEqual({ retry: true, atMs: T0 + DAY });
    expect(nextRetry({ attempt: 51, queuedAtMs: T0, nowMs: T0 + DAY, random: 0.9 })).toEqual({
      retry: false,
    });
    expect(nextRetry({ attempt: 2, queuedAtMs: T0, nowMs: T0 + DAY + 1, random: 0 })).toEqual({
      retry: false,
    });
  });

  it("gives up after about 300 tries of a receiver that never answers", () => {
    let now = T0;
    let attempts = 0;
    for (;;) {
      attempts += 1;
      const decision = nextRetry({ attempt: attempts, queuedAtMs: T0, nowMs: now, random: 0.5 });
      if (!decision.retry) break;
      expect(decision.atMs).toBeGreaterThan(now);
      now = decision.atMs;
    }
    expect(now).toBe(T0 + DEFAULT_BACKOFF.giveUpAfterMs);
    // 24 h at 3.75 min (the mean of 2.5 to 5 min at random 0.5) is 384 tries, plus the first ten doublings.
    expect(attempts).toBeGreaterThan(380);
    expect(attempts).toBeLessThan(400);
  });

  it("reads Retry-After as seconds or an HTTP date, and ignores what it cannot read", () => {
    expect(parseRetryAfter("30", T0)).toBe(30 * SECOND);
    expect(parseRetryAfter("Thu, 01 Jan 2026 00:01:00 GMT", T0)).toBe(MINUTE);
    expect(parseRetryAfter("Wed, 31 Dec 2025 00:00:00 GMT", T0)).toBe(0);
    expect(parseRetryAfter("soon", T0)).toBeUndefined();
    expect(parseRetryAfter(null, T0)).toBeUndefined();
  });
});
