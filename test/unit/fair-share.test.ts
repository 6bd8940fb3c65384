import { describe, expect, it } from "vitest";
import {
  admit,
  coolingDown,
  DROP_WINDOW_MS,
  FLOOD_COOL_DOWN_MS,
  isIdle,
  LOG_INTERVAL_MS,
  MAX_READ_HOLD_MS,
  NOTIFY_INTERVAL_MS,
  newShare,
  refund,
  type ShareLimits,
} from "../../broker/fair-share.js";

const LIMITS: ShareLimits = { deviceRate: 10, deviceBurst: 5, floodDrops: 20 };
const T0 = 1_000_000;

/** Sends `count` messages of one QoS at one instant; the kinds of the answers. */
function burst(share: ReturnType<typeof newShare>, qos: number, count: number, now = T0) {
  return Array.from({ length: count }, () => admit(share, qos, LIMITS, now).kind);
}

describe("the token bucket", () => {
  it("lets a burst through at once and nothing more", () => {
    const share = newShare(LIMITS, T0);
    expect(burst(share, 0, 7)).toEqual(["pass", "pass", "pass", "pass", "pass", "drop", "drop"]);
  });

  it("earns a token every 1/rate seconds", () => {
    const share = newShare(LIMITS, T0);
    burst(share, 0, 5);
    expect(admit(share, 0, LIMITS, T0 + 99).kind).toBe("drop");
    expect(admit(share, 0, LIMITS, T0 + 100).kind).toBe("pass");
    expect(admit(share, 0, LIMITS, T0 + 150).kind).toBe("drop");
    expect(admit(share, 0, LIMITS, T0 + 200).kind).toBe("pass");
  });

  it("never holds more than the burst however long the device was quiet", () => {
    const share = newShare(LIMITS, T0);
    expect(burst(share, 0, 6, T0 + 3_600_000)).toEqual(["pass", "pass", "pass", "pass", "pass", "drop"]);
  });

  it("keeps a device's sustained rate: 10 a second pass over 10 seconds of 100 a second", () => {
    const share = newShare(LIMITS, T0);
    let passed = 0;
    for (let ms = 0; ms < 10_000; ms += 10) if (admit(share, 0, LIMITS, T0 + ms).kind === "pass") passed += 1;
    expect(passed).toBe(5 + 99); // the burst, then one per 100 ms earned after it
  });
});

describe("QoS 1 over the rate", () => {
  it("waits for its token instead of being dropped, in arrival order", () => {
    const share = newShare(LIMITS, T0);
    burst(share, 1, 5);
    expect(admit(share, 1, LIMITS, T0)).toEqual({ kind: "wait", readyAt: T0 + 100 });
    expect(admit(share, 1, LIMITS, T0)).toEqual({ kind: "wait", readyAt: T0 + 200 });
    expect(admit(share, 1, LIMITS, T0 + 50)).toEqual({ kind: "wait", readyAt: T0 + 300 });
  });

  it("takes the tokens QoS 0 would have had, so QoS 0 sent meanwhile is dropped", () => {
    const share = newShare(LIMITS, T0);
    burst(share, 1, 7);
    expect(admit(share, 0, LIMITS, T0 + 150).kind).toBe("drop");
    expect(admit(share, 0, LIMITS, T0 + 300).kind).toBe("pass");
  });

  it("gives back the tokens of waiting messages whose connection closed", () => {
    const share = newShare(LIMITS, T0);
    burst(share, 1, 8);
    refund(share, 3, LIMITS);
    expect(admit(share, 0, LIMITS, T0 + 100).kind).toBe("pass");
  });

  it("is never dropped, even while the device cools down after a flood", () => {
    const share = newShare(LIMITS, T0);
    burst(share, 0, 5 + LIMITS.floodDrops);
    expect(coolingDown(share, T0)).toBe(true);
    expect(admit(share, 1, LIMITS, T0).kind).toBe("wait");
  });
});

describe("QoS 0 drops", () => {
  it("hold the device's reads until its next token is due, and a token's time per drop in a row", () => {
    const share = newShare(LIMITS, T0);
    burst(share, 0, 5);
    expect(admit(share, 0, LIMITS, T0 + 40)).toMatchObject({ kind: "drop", readAgainAt: T0 + 100 });
    expect(admit(share, 0, LIMITS, T0 + 40)).toMatchObject({ kind: "drop", readAgainAt: T0 + 200 });
    expect(admit(share, 0, LIMITS, T0 + 40)).toMatchObject({ kind: "drop", readAgainAt: T0 + 300 });
  });

  it("start holding afresh once a message has passed", () => {
    const share = newShare(LIMITS, T0);
    burst(share, 0, 8);
    expect(admit(share, 0, LIMITS, T0 + 100).kind).toBe("pass");
    expect(admit(share, 0, LIMITS, T0 + 100)).toMatchObject({ kind: "drop", readAgainAt: T0 + 200 });
  });

  it("never hold reads longer than MAX_READ_HOLD_MS, however long the flood", () => {
    const share = newShare(LIMITS, T0);
    const answers = burst(share, 0, 100).length;
    expect(answers).toBe(100);
    expect(admit(share, 0, LIMITS, T0)).toMatchObject({ kind: "drop", readAgainAt: T0 + MAX_READ_HOLD_MS });
    const slow = { ...LIMITS, deviceRate: 0.1 };
    const starved = newShare(slow, T0);
    burst(starved, 0, 5);
    expect(admit(starved, 0, slow, T0)).toMatchObject({ kind: "drop", readAgainAt: T0 + MAX_READ_HOLD_MS });
  });

  it("tell the device at most once a second, and the first drop at once", () => {
    const share = newShare(LIMITS, T0);
    burst(share, 0, 5);
    const notified = (now: number) => {
      const admission = admit(share, 0, LIMITS, now);
      return admission.kind === "drop" && admission.notify;
    };
    expect([T0, T0 + 1, T0 + NOTIFY_INTERVAL_MS - 1].map(notified)).toEqual([true, false, false]);
    share.tokens = 0; // what the second earned is spent by others
    expect(notified(T0 + NOTIFY_INTERVAL_MS)).toBe(true);
  });

  it("are logged at most once per interval, with the count since the last line", () => {
    const limits = { ...LIMITS, floodDrops: 1_000 };
    const share = newShare(limits, T0);
    const logged: (number | undefined)[] = [];
    const send = (now: number) => {
      share.tokens = 0;
      share.refilledAt = now;
      const admission = admit(share, 0, limits, now);
      if (admission.kind === "drop") logged.push(admission.logDrops);
    };
    send(T0);
    send(T0 + 1);
    send(T0 + 2);
    send(T0 + LOG_INTERVAL_MS);
    expect(logged).toEqual([1, undefined, undefined, 3]);
  });

  it("past floodDrops within a minute mean a flood: told, disconnected, then cooling down", () => {
    const share = newShare(LIMITS, T0);
    const answers = Array.from({ length: 5 + LIMITS.floodDrops }, (_, i) => admit(share, 0, LIMITS, T0 + i));
    expect(answers.filter((a) => a.kind === "drop" && a.flood)).toHaveLength(1);
    expect(answers.at(-1)).toMatchObject({ kind: "drop", flood: true, notify: true });
    expect(coolingDown(share, T0 + FLOOD_COOL_DOWN_MS - 1)).toBe(true);
    expect(coolingDown(share, T0 + 5 + LIMITS.floodDrops + FLOOD_COOL_DOWN_MS)).toBe(false);
  });

  it("drop quietly while cooling down: no second flood, no notice", () => {
    const share = newShare(LIMITS, T0);
    burst(share, 0, 5 + LIMITS.floodDrops);
    expect(admit(share, 0, LIMITS, T0 + 1)).toMatchObject({
      kind: "drop",
      notify: false,
      logDrops: undefined,
      flood: false,
    });
  });

  it("spread over more than a minute are no flood", () => {
    const share = newShare(LIMITS, T0);
    const step = Math.ceil((2 * DROP_WINDOW_MS) / LIMITS.floodDrops);
    let floods = 0;
    for (let i = 0; i < LIMITS.floodDrops; i++) {
      share.tokens = 0;
      share.refilledAt = T0 + i * step;
      const admission = admit(share, 0, LIMITS, T0 + i * step);
      if (admission.kind === "drop" && admission.flood) floods += 1;
    }
    expect(floods).toBe(0);
  });
});

describe("isIdle", () => {
  it("holds once the bucket is full again, the drop window over and no cool-down left", () => {
    const share = newShare(LIMITS, T0);
    burst(share, 0, 6);
    expect(isIdle(share, LIMITS, T0 + 1_000)).toBe(false);
    expect(isIdle(share, LIMITS, T0 + DROP_WINDOW_MS)).toBe(true);
  });

  it("does not hold for a device cooling down", () => {
    const share = newShare(LIMITS, T0);
    burst(share, 0, 5 + LIMITS.floodDrops);
    share.dropWindowStart = T0 - DROP_WINDOW_MS;
    share.tokens = LIMITS.deviceBurst;
    expect(isIdle(share, LIMITS, T0 + FLOOD_COOL_DOWN_MS - 1)).toBe(false);
    expect(isIdle(share, LIMITS, T0 + FLOOD_COOL_DOWN_MS)).toBe(true);
  });
});
