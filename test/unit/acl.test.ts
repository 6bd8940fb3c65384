import { describe, expect, it } from "vitest";
import {
  canPublish,
  canServiceSubscribe,
  canSubscribe,
  canWill,
  isCommandFilter,
  serviceSubscriptionRefusal,
  subscriptionRefusal,
} from "../../broker/acl.js";
import { authenticateService, isServiceUsername } from "../../broker/service-auth.js";

const ID = "modem-0001";

describe("canPublish", () => {
  it.each([
    "fq/v1/modem-0001/hello",
    "fq/v1/modem-0001/telemetry",
    "fq/v1/modem-0001/fault",
    "fq/v1/modem-0001/event",
    "fq/v1/modem-0001/status",
    "fq/v1/modem-0001/cmd/cmd-1/result",
    // Outside the grammar but on its own prefix: ingest refuses it as unknown_channel and tells the device.
    "fq/v1/modem-0001/foo",
    "fq/v1/modem-0001/cmd/cmd-1/result/extra",
  ])("lets a device publish on its own topic %s", (topic) => {
    expect(canPublish(ID, topic)).toBe(true);
  });

  it.each([
    ["its errors topic", "fq/v1/modem-0001/errors"],
    ["its command topic", "fq/v1/modem-0001/cmd/cmd-1"],
    ["another device's telemetry", "fq/v1/modem-0002/telemetry"],
    ["a device whose id extends its own", "fq/v1/modem-00010/telemetry"],
    ["another device's command result", "fq/v1/modem-0002/cmd/cmd-1/result"],
    ["$SYS", "$SYS/broker/uptime"],
    ["a $-topic under its prefix", "$fq/v1/modem-0001/telemetry"],
    ["#", "#"],
    ["+", "+"],
    ["fq/v1/#", "fq/v1/#"],
    ["fq/v1/+/errors", "fq/v1/+/errors"],
    ["fq/v1/+/telemetry", "fq/v1/+/telemetry"],
    ["another version", "fq/v2/modem-0001/telemetry"],
    ["another root", "other/modem-0001/telemetry"],
    ["a leading slash", "/fq/v1/modem-0001/telemetry"],
    ["another case", "FQ/v1/modem-0001/telemetry"],
    ["the empty topic", ""],
  ])("refuses a publish to %s", (_case, topic) => {
    expect(canPublish(ID, topic)).toBe(false);
  });

  it.each([
    ["a space", "bad id"],
    ["a leading dash", "-modem"],
    ["a wildcard", "+"],
    ["nothing", ""],
    ["65 characters", "m".repeat(65)],
  ])("refuses a device id with %s even on its own prefix", (_case, deviceId) => {
    expect(canPublish(deviceId, `fq/v1/${deviceId}/telemetry`)).toBe(false);
  });
});

describe("canSubscribe", () => {
  it.each(["fq/v1/modem-0001/errors", "fq/v1/modem-0001/cmd/+", "fq/v1/modem-0001/cmd/cmd-1"])(
    "lets a device subscribe to %s",
    (filter) => {
      expect(canSubscribe(ID, filter)).toBe(true);
    },
  );

  it.each([
    ["#", "#"],
    ["+", "+"],
    ["fq/v1/#", "fq/v1/#"],
    ["fq/v1/+/errors", "fq/v1/+/errors"],
    ["fq/v1/+/cmd/+", "fq/v1/+/cmd/+"],
    ["its whole prefix", "fq/v1/modem-0001/#"],
    ["any channel of its own", "fq/v1/modem-0001/+"],
    ["every command level", "fq/v1/modem-0001/cmd/#"],
    ["its own telemetry", "fq/v1/modem-0001/telemetry"],
    ["its own status", "fq/v1/modem-0001/status"],
    ["its command results", "fq/v1/modem-0001/cmd/cmd-1/result"],
    ["all its command results", "fq/v1/modem-0001/cmd/+/result"],
    ["another device's errors", "fq/v1/modem-0002/errors"],
    ["another device's commands", "fq/v1/modem-0002/cmd/+"],
    ["another device's command", "fq/v1/modem-0002/cmd/cmd-1"],
    ["$SYS", "$SYS/#"],
    ["the errors topic with a trailing slash", "fq/v1/modem-0001/errors/"],
    ["the empty filter", ""],
  ])("refuses a subscription to %s", (_case, filter) => {
    expect(canSubscribe(ID, filter)).toBe(false);
  });

  it.each([
    ["a space", "bad id"],
    ["65 characters", "m".repeat(65)],
  ])("refuses a command subscription for a device id with %s", (_case, deviceId) => {
    expect(canSubscribe(deviceId, `fq/v1/${deviceId}/cmd/cmd-1`)).toBe(false);
  });

  it("refuses the errors and command filters of a wildcard device id", () => {
    expect(canSubscribe("+", "fq/v1/+/errors")).toBe(false);
    expect(canSubscribe("+", "fq/v1/+/cmd/+")).toBe(false);
  });
});

describe("canWill", () => {
  it("lets a device's will announce it on its own status topic", () => {
    expect(canWill(ID, "fq/v1/modem-0001/status")).toBe(true);
  });

  it.each([
    ["its telemetry", "fq/v1/modem-0001/telemetry"],
    ["its hello", "fq/v1/modem-0001/hello"],
    ["its errors topic", "fq/v1/modem-0001/errors"],
    ["its command result", "fq/v1/modem-0001/cmd/cmd-1/result"],
    ["another device's status", "fq/v1/modem-0002/status"],
    ["every device's status", "fq/v1/+/status"],
    ["$SYS", "$SYS/broker/clients"],
    ["#", "#"],
  ])("refuses a will on %s", (_case, topic) => {
    expect(canWill(ID, topic)).toBe(false);
  });

  it("refuses a will of a malformed device id", () => {
    expect(canWill("bad id", "fq/v1/bad id/status")).toBe(false);
  });
});

describe("subscriptionRefusal", () => {
  const errors = "fq/v1/modem-0001/errors";
  const commands = "fq/v1/modem-0001/cmd/+";
  const held = new Set([errors, commands]);

  it("grants an allowed filter while the device holds fewer than its limit", () => {
    expect(subscriptionRefusal(ID, "fq/v1/modem-0001/cmd/cmd-1", held, 3)).toBeUndefined();
  });

  it("refuses a new filter at the limit", () => {
    expect(subscriptionRefusal(ID, "fq/v1/modem-0001/cmd/cmd-1", held, 2)).toBe("limit");
  });

  it("grants a filter the device already holds again at the limit: it replaces the old one", () => {
    expect(subscriptionRefusal(ID, commands, held, 2)).toBeUndefined();
  });

  it("refuses a filter outside the device's topics for that, whatever it holds", () => {
    expect(subscriptionRefusal(ID, "fq/v1/#", new Set(), 16)).toBe("acl");
    expect(subscriptionRefusal(ID, "fq/v1/#", held, 2)).toBe("acl");
  });
});

describe("the alert subscribers' account", () => {
  it.each([
    "fieldq/alerts/#",
    "fieldq/alerts/critical/#",
    "fieldq/alerts/+/issue_regressed",
    "fieldq/alerts/warning/promise_breached",
  ])("may subscribe to %s", (filter) => {
    expect(canServiceSubscribe(filter)).toBe(true);
    expect(serviceSubscriptionRefusal(filter, new Set(), 4)).toBeUndefined();
  });

  it.each([
    ["everything", "#"],
    ["fieldq's whole tree", "fieldq/#"],
    ["the alert root alone", "fieldq/alerts"],
    ["the alert root with an empty level", "fieldq/alerts/"],
    ["a look-alike root", "fieldq/alertsx/#"],
    ["the devices' tree", "fq/v1/#"],
    ["one device's commands", "fq/v1/modem-0001/cmd/+"],
    ["$SYS", "$SYS/#"],
  ])("may not subscribe to %s", (_case, filter) => {
    expect(canServiceSubscribe(filter)).toBe(false);
    expect(serviceSubscriptionRefusal(filter, new Set(), 4)).toBe("acl");
  });

  it("holds no more filters than the limit", () => {
    const held = new Set(["fieldq/alerts/a/#", "fieldq/alerts/b/#"]);
    expect(serviceSubscriptionRefusal("fieldq/alerts/c/#", held, 2)).toBe("limit");
    expect(serviceSubscriptionRefusal("fieldq/alerts/a/#", held, 2)).toBeUndefined();
  });

  it("is no device: a device may not subscribe to the alerts", () => {
    expect(canSubscribe(ID, "fieldq/alerts/#")).toBe(false);
    expect(canSubscribe(ID, "fieldq/alerts/critical/issue_opened")).toBe(false);
  });
});

describe("isCommandFilter", () => {
  it("is the device's own command filter only", () => {
    expect(isCommandFilter(ID, "fq/v1/modem-0001/cmd/+")).toBe(true);
    expect(isCommandFilter(ID, "fq/v1/modem-0002/cmd/+")).toBe(false);
    expect(isCommandFilter(ID, "fq/v1/modem-0001/errors")).toBe(false);
    expect(isCommandFilter(ID, "fq/v1/modem-0001/cmd/c1-abc")).toBe(false);
  });
});

describe("authenticateService", () => {
  const account = { username: "alerts:ops", password: "a-long-service-password" };

  it("accepts the password with a client id no device can have, or an empty one", () => {
    expect(isServiceUsername(account, "alerts:ops")).toBe(true);
    expect(
      authenticateService(account, "alerts:pager", "alerts:pager", Buffer.from(account.password)),
    ).toEqual({
      ok: true,
    });
    expect(authenticateService(account, "aedes_1234", "", Buffer.from(account.password))).toEqual({
      ok: true,
    });
  });

  it("refuses a wrong or missing password with return code 5", () => {
    expect(
      authenticateService(account, "alerts:x", "alerts:x", Buffer.from("a-long-service-passwore")),
    ).toMatchObject({
      ok: false,
      returnCode: 5,
    });
    expect(authenticateService(account, "alerts:x", "alerts:x", undefined)).toMatchObject({
      ok: false,
      returnCode: 5,
    });
  });

  it("refuses a client id a device could have (it would take over the device's session), code 2", () => {
    expect(authenticateService(account, ID, ID, Buffer.from(account.password))).toMatchObject({
      ok: false,
      returnCode: 2,
    });
  });

  it("is not asked about other usernames", () => {
    expect(isServiceUsername(account, ID)).toBe(false);
    expect(isServiceUsername(account, undefined)).toBe(false);
    expect(isServiceUsername(undefined, "alerts:ops")).toBe(false);
  });
});
