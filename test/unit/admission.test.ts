import { describe, expect, it } from "vitest";
import {
  type AdmissionLimits,
  AUTH_WINDOW_MS,
  admitConnection,
  authThrottled,
  forgetExpiredFailures,
  newAdmission,
  recordAuthFailure,
  releaseConnection,
} from "../../broker/admission.js";

const LIMITS: AdmissionLimits = { maxConnections: 5, maxConnectionsPerIp: 2, authFailuresPerMinute: 3 };
const T0 = 1_000_000;
const A = "192.0.2.1";
const B = "192.0.2.2";

describe("connection limits", () => {
  it("refuses an address's connection past its share and still admits other addresses", () => {
    const state = newAdmission();
    expect([A, A, A, B].map((address) => admitConnection(state, address, LIMITS, T0))).toEqual([
      undefined,
      undefined,
      "per_ip",
      undefined,
    ]);
  });

  it("refuses every address once the broker holds its total", () => {
    const state = newAdmission();
    const addresses = ["192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.13", "192.0.2.14", "192.0.2.15"];
    expect(addresses.map((address) => admitConnection(state, address, LIMITS, T0))).toEqual([
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      "global",
    ]);
  });

  it("admits again once a connection of the address has closed", () => {
    const state = newAdmission();
    admitConnection(state, A, LIMITS, T0);
    admitConnection(state, A, LIMITS, T0);
    releaseConnection(state, A);
    expect(admitConnection(state, A, LIMITS, T0)).toBeUndefined();
    expect(state.total).toBe(2);
  });

  it("counts nothing for a refused connection, so closing it later frees nothing", () => {
    const state = newAdmission();
    admitConnection(state, A, LIMITS, T0);
    admitConnection(state, A, LIMITS, T0);
    admitConnection(state, A, LIMITS, T0);
    expect(state.open.get(A)).toBe(2);
    expect(state.total).toBe(2);
  });

  it("forgets an address with no connection left", () => {
    const state = newAdmission();
    admitConnection(state, A, LIMITS, T0);
    releaseConnection(state, A);
    expect(state.open.size).toBe(0);
    expect(state.total).toBe(0);
  });
});

describe("authentication failures", () => {
  it("throttle an address at its limit per minute, and say so once", () => {
    const state = newAdmission();
    const started = [1, 2, 3, 4].map((i) => recordAuthFailure(state, A, LIMITS, T0 + i));
    expect(started).toEqual([false, false, true, false]);
    expect(authThrottled(state, A, LIMITS, T0 + 10)).toBe(true);
    expect(admitConnection(state, A, LIMITS, T0 + 10)).toBe("auth_throttled");
  });

  it("throttle only the failing address", () => {
    const state = newAdmission();
    for (let i = 0; i < LIMITS.authFailuresPerMinute; i++) recordAuthFailure(state, A, LIMITS, T0);
    expect(admitConnection(state, B, LIMITS, T0)).toBeUndefined();
  });

  it("are forgiven once the minute since the first of them has passed", () => {
    const state = newAdmission();
    for (let i = 0; i < LIMITS.authFailuresPerMinute; i++) recordAuthFailure(state, A, LIMITS, T0);
    expect(authThrottled(state, A, LIMITS, T0 + AUTH_WINDOW_MS - 1)).toBe(true);
    expect(authThrottled(state, A, LIMITS, T0 + AUTH_WINDOW_MS)).toBe(false);
    expect(admitConnection(state, A, LIMITS, T0 + AUTH_WINDOW_MS)).toBeUndefined();
  });

  it("below the limit within a minute never throttle, however many minutes", () => {
    const state = newAdmission();
    for (let minute = 0; minute < 10; minute++) {
      for (let i = 0; i < LIMITS.authFailuresPerMinute - 1; i++) {
        recordAuthFailure(state, A, LIMITS, T0 + minute * AUTH_WINDOW_MS + i);
      }
      expect(authThrottled(state, A, LIMITS, T0 + minute * AUTH_WINDOW_MS + 10)).toBe(false);
    }
  });

  it("of a past minute are swept away", () => {
    const state = newAdmission();
    recordAuthFailure(state, A, LIMITS, T0);
    recordAuthFailure(state, B, LIMITS, T0 + AUTH_WINDOW_MS / 2);
    forgetExpiredFailures(state, T0 + AUTH_WINDOW_MS);
    expect([...state.failures.keys()]).toEqual([B]);
  });
});
