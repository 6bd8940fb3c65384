import { describe, expect, it } from "vitest";
import { defaultClientId, parseBrokerUrl, shareFilters } from "../../ingest/external-consumer.js";

describe("shareFilters", () => {
  it("shares every uplink channel of every device within the group, and nothing a device receives", () => {
    expect(shareFilters("fieldq")).toEqual([
      "$share/fieldq/fq/v1/+/hello",
      "$share/fieldq/fq/v1/+/telemetry",
      "$share/fieldq/fq/v1/+/fault",
      "$share/fieldq/fq/v1/+/event",
      "$share/fieldq/fq/v1/+/status",
      "$share/fieldq/fq/v1/+/cmd/+/result",
    ]);
  });
});

describe("defaultClientId", () => {
  it("is the same for the same host and data folder, so a restart resumes the session", () => {
    expect(defaultClientId("ingest-1", "/var/lib/fieldq")).toBe(
      defaultClientId("ingest-1", "/var/lib/fieldq"),
    );
  });

  it("differs for two data folders on one host", () => {
    expect(defaultClientId("h", "/data/a")).not.toBe(defaultClientId("h", "/data/b"));
  });

  it("keeps to the characters and length every broker accepts", () => {
    const id = defaultClientId(
      "a host/with:odd#chars+and-a-very-long-name-indeed-longer-than-thirty-two",
      "/d",
    );
    expect(id).toMatch(/^fieldq-ingest-[A-Za-z0-9_.-]+-[0-9a-f]{8}$/);
    expect(id.length).toBeLessThanOrEqual(64);
  });
});

describe("parseBrokerUrl", () => {
  it.each(["mqtt://broker:1883", "mqtts://broker.example.com:8883", "ws://b/mqtt", "wss://b:443/mqtt"])(
    "accepts %s",
    (url) => {
      expect(parseBrokerUrl(url).ok).toBe(true);
    },
  );

  it.each([
    ["broker:1883", /mqtt:\/\//],
    ["http://broker:1883", /starts with mqtt:\/\//],
    ["not a url", /not a URL/],
    ["mqtt://", /not a URL|names no host/],
  ])("refuses %s", (url, why) => {
    const parsed = parseBrokerUrl(url);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error).toMatch(why);
  });
});
