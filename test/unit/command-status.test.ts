import { describe, expect, it } from "vitest";
import {
  type CommandLogEntry,
  commandStatus,
  countStatuses,
  isPending,
  nextSendAt,
} from "../../analytics/command-status.js";

const queued: CommandLogEntry = { createdMs: 1_000, expiresMs: 61_000, deliveredMs: null };
const delivered: CommandLogEntry = { ...queued, deliveredMs: 2_000 };

describe("commandStatus", () => {
  it.each([
    ["queued before its expiry", queued, undefined, 60_999, "queued"],
    ["expired at its expiry without a delivery", queued, undefined, 61_000, "expired"],
    ["delivered once the device acknowledged it", delivered, undefined, 30_000, "delivered"],
    [
      "still delivered (not expired) past its expiry: it reached the device",
      delivered,
      undefined,
      99_000,
      "delivered",
    ],
    [
      "succeeded when the device answered ok",
      delivered,
      { ok: true, message: null, atMs: 3_000 },
      4_000,
      "succeeded",
    ],
    [
      "failed when the device answered not ok",
      delivered,
      { ok: false, message: "busy", atMs: 3_000 },
      4_000,
      "failed",
    ],
    [
      "succeeded on an answer whose PUBACK was lost",
      queued,
      { ok: true, message: null, atMs: 3_000 },
      99_000,
      "succeeded",
    ],
  ] as const)("is %s", (_case, log, answer, now, status) => {
    expect(commandStatus(log, answer, now)).toBe(status);
  });

  it("counts only a queued, unexpired, unanswered command as pending", () => {
    expect(isPending(queued, undefined, 5_000)).toBe(true);
    expect(isPending(queued, undefined, 61_000)).toBe(false);
    expect(isPending(delivered, undefined, 5_000)).toBe(false);
    expect(isPending(queued, { ok: false, message: null, atMs: 2_000 }, 5_000)).toBe(false);
  });
});

describe("countStatuses", () => {
  it("counts every status, zero for those absent", () => {
    expect(countStatuses(["queued", "expired", "queued", "succeeded"])).toEqual({
      queued: 2,
      delivered: 0,
      succeeded: 1,
      failed: 0,
      expired: 1,
    });
  });
});

describe("nextSendAt", () => {
  it("spaces sends 1/rate seconds apart", () => {
    expect(nextSendAt(undefined, 5)).toBe(Number.NEGATIVE_INFINITY);
    expect(nextSendAt(10_000, 5)).toBe(10_200);
    expect(nextSendAt(10_000, 20)).toBe(10_050);
  });
});
