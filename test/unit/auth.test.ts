import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { authenticateDevice, IDENTIFIER_REJECTED, NOT_AUTHORIZED } from "../../broker/auth.js";
import { deviceKey, isDeviceKey } from "../../contract/device-key.js";

const SECRET = "test-secret-0123456789abcdef";
const ID = "modem-0001";
const KEY = createHmac("sha256", SECRET).update(ID).digest("base64url");

describe("deviceKey", () => {
  it("is base64url of HMAC-SHA256(secret, deviceId), without padding", () => {
    expect(deviceKey(SECRET, ID)).toBe(KEY);
    expect(KEY).toBe("ZCLjZMxsRdTvvtAUwDFLBUY9iHCVxt0NAkil588RCdY");
  });

  it("matches the RFC 4231 HMAC-SHA256 test case 2", () => {
    // 5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843, base64url without padding
    expect(deviceKey("Jefe", "what do ya want for nothing?")).toBe(
      "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM",
    );
  });

  it.each(["modem-0001", "printer_7.b", "r", "x".repeat(64)])("is 43 URL-safe characters for %s", (id) => {
    expect(deviceKey(SECRET, id)).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it("is deterministic and differs per device and per secret", () => {
    expect(deviceKey(SECRET, ID)).toBe(deviceKey(SECRET, ID));
    expect(deviceKey(SECRET, "modem-0002")).not.toBe(KEY);
    expect(deviceKey(`${SECRET}x`, ID)).not.toBe(KEY);
  });
});

describe("isDeviceKey", () => {
  it("accepts the device's key", () => {
    expect(isDeviceKey(SECRET, ID, KEY)).toBe(true);
  });

  it.each([
    ["one character changed", `${KEY.slice(0, -1)}${KEY.endsWith("A") ? "B" : "A"}`],
    ["one character short", KEY.slice(0, -1)],
    ["one character long", `${KEY}A`],
    ["base64 padding", `${KEY}=`],
    ["standard base64", createHmac("sha256", SECRET).update(ID).digest("base64")],
    ["hex", createHmac("sha256", SECRET).update(ID).digest("hex")],
    ["another device's key", deviceKey(SECRET, "modem-0002")],
    ["the key under another secret", deviceKey(`${SECRET}x`, ID)],
    ["nothing", ""],
  ])("refuses a key with %s", (_case, candidate) => {
    expect(isDeviceKey(SECRET, ID, candidate)).toBe(false);
  });
});

describe("authenticateDevice", () => {
  it("accepts a device whose client id and username are its id and whose password is its key", () => {
    expect(authenticateDevice(SECRET, ID, ID, Buffer.from(KEY))).toEqual({ ok: true, deviceId: ID });
  });

  const badId = "bad id";
  it.each<[string, string, string | undefined, Buffer | undefined]>([
    ["a wrong key", ID, ID, Buffer.from(deviceKey(SECRET, "modem-0002"))],
    ["an empty password", ID, ID, Buffer.alloc(0)],
    ["a missing username", ID, undefined, Buffer.from(KEY)],
    ["a missing password", ID, ID, undefined],
    ["no credentials", ID, undefined, undefined],
    ["a username outside the id pattern, with its key", badId, badId, Buffer.from(deviceKey(SECRET, badId))],
    ["an empty username", "", "", Buffer.from(deviceKey(SECRET, ""))],
    [
      "a 65-character username",
      "m".repeat(65),
      "m".repeat(65),
      Buffer.from(deviceKey(SECRET, "m".repeat(65))),
    ],
    ["a wrong key and another client id", "other", ID, Buffer.from("nope")],
  ])("refuses %s with return code 5", (_case, clientId, username, password) => {
    const decision = authenticateDevice(SECRET, clientId, username, password);
    expect(decision).toMatchObject({ ok: false, returnCode: NOT_AUTHORIZED });
    expect(NOT_AUTHORIZED).toBe(5);
  });

  it.each([
    ["another device's id", "modem-0002"],
    ["a random id", "mqttjs_3f2a9c"],
    ["an empty id", ""],
    ["another case", "MODEM-0001"],
  ])("refuses a client id that differs from the username (%s) with return code 2", (_case, clientId) => {
    expect(authenticateDevice(SECRET, clientId, ID, Buffer.from(KEY))).toMatchObject({
      ok: false,
      returnCode: IDENTIFIER_REJECTED,
    });
    expect(IDENTIFIER_REJECTED).toBe(2);
  });
});
