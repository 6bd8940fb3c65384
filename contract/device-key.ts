import { createHmac, timingSafeEqual } from "node:crypto";

/** A device's key: base64url(HMAC-SHA256(secret, deviceId)), as in Azure DPS group enrollment. */
export function deviceKey(secret: string, deviceId: string): string {
  return createHmac("sha256", secret).update(deviceId, "utf8").digest("base64url");
}

export function isDeviceKey(secret: string, deviceId: string, candidate: string): boolean {
  const expected = Buffer.from(deviceKey(secret, deviceId));
  const given = Buffer.from(candidate);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
