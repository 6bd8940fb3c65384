import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { BrokerHandle } from "../../broker/start-broker.js";
import { startCommandDispatch } from "../../commands/dispatch.js";
import { silentLogger } from "../../observe/logger.js";
import type { CommandService, PendingCommand } from "../../services/commands.js";

// The dispatcher's rules on a broker and a service of the test's own: the rate, the devices it may send to,
// PUBACKs recorded once, expiry. The real broker and InfluxDB are in test/integration/commands.test.ts.

const command = (id: string, device: string, expiresMs = Date.now() + 60_000): PendingCommand => ({
  id,
  device,
  type: "reboot",
  args: {},
  createdMs: Date.now(),
  expiresMs,
  batch: null,
});

function fakes(initial: PendingCommand[], ready: Set<string>, failedWrites = 0) {
  let failures = failedWrites;
  const sends: Array<{ device: string; id: string; at: number; payload: unknown }> = [];
  const delivered: string[] = [];
  let onDelivered: ((device: string, id: string) => void) | undefined;
  let onReady: ((device: string) => void) | undefined;
  let stored = [...initial];
  const broker = {
    isSubscribed: (device: string) => ready.has(device),
    sendCommand: async (device: string, id: string, payload: string) => {
      sends.push({ device, id, at: Date.now(), payload: JSON.parse(payload) });
      return true;
    },
    onDelivered: (l: (device: string, id: string) => void) => {
      onDelivered = l;
      return () => {};
    },
    onDeviceReady: (l: (device: string) => void) => {
      onReady = l;
      return () => {};
    },
  } as unknown as BrokerHandle;
  const commands = {
    // What InfluxDB would answer: everything stored that has no delivered point yet.
    pending: async () => stored.filter((c) => !delivered.includes(c.id) && c.expiresMs > Date.now()),
    markDelivered: async (c: PendingCommand) => {
      if (failures > 0) {
        failures -= 1;
        throw new Error("InfluxDB away");
      }
      delivered.push(c.id);
    },
    onQueued: () => () => {},
  } as unknown as CommandService;
  return {
    broker,
    commands,
    sends,
    delivered,
    ack: (device: string, id: string) => onDelivered?.(device, id),
    connect: (device: string) => {
      ready.add(device);
      onReady?.(device);
    },
    store: (c: PendingCommand) => {
      stored = [...stored, c];
    },
  };
}

describe("startCommandDispatch", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_800_000_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("sends to ready devices no faster than the rate, with the Command payload", async () => {
    const ids = ["d1", "d2", "d3", "d4", "d5"];
    const f = fakes(
      ids.map((d, i) => command(`c${i}`, d)),
      new Set(ids),
    );
    const dispatch = startCommandDispatch({
      broker: f.broker,
      commands: f.commands,
      logger: silentLogger,
      rate: 4,
    });
    await vi.advanceTimersByTimeAsync(2_000);
    expect(f.sends.map((s) => s.device)).toEqual(ids);
    const gaps = f.sends.slice(1).map((s, i) => s.at - (f.sends[i]?.at ?? 0));
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(250);
    expect(f.sends[0]?.payload).toEqual({ type: "reboot", ts: f.sends[0]?.at });
    await dispatch.close();
  });

  it("waits for an offline device and sends when it becomes ready", async () => {
    const f = fakes([command("c1", "away")], new Set());
    const dispatch = startCommandDispatch({
      broker: f.broker,
      commands: f.commands,
      logger: silentLogger,
      rate: 10,
    });
    await vi.advanceTimersByTimeAsync(3_000);
    expect(f.sends).toHaveLength(0);
    f.connect("away");
    await vi.advanceTimersByTimeAsync(10);
    expect(f.sends.map((s) => s.id)).toEqual(["c1"]);
    await dispatch.close();
  });

  it("records a PUBACK once and does not send the command again while the record waits for InfluxDB", async () => {
    const f = fakes([command("c1", "d1")], new Set(["d1"]), 2);
    const dispatch = startCommandDispatch({
      broker: f.broker,
      commands: f.commands,
      logger: silentLogger,
      rate: 10,
    });
    await vi.advanceTimersByTimeAsync(100);
    expect(f.sends).toHaveLength(1);
    f.ack("d1", "c1");
    f.ack("d1", "c1");
    await vi.advanceTimersByTimeAsync(5_000);
    expect(f.delivered).toEqual(["c1"]);
    expect(f.sends).toHaveLength(1);
    await dispatch.close();
  });

  it("sends again a command whose PUBACK never came, after the ack timeout", async () => {
    const f = fakes([command("c1", "d1")], new Set(["d1"]));
    const dispatch = startCommandDispatch({
      broker: f.broker,
      commands: f.commands,
      logger: silentLogger,
      rate: 10,
      ackTimeoutMs: 5_000,
    });
    await vi.advanceTimersByTimeAsync(4_000);
    expect(f.sends).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(2_500);
    expect(f.sends).toHaveLength(2);
    await dispatch.close();
  });

  it("never sends an expired command", async () => {
    const f = fakes([command("c1", "late", Date.now() + 1_000)], new Set());
    const dispatch = startCommandDispatch({
      broker: f.broker,
      commands: f.commands,
      logger: silentLogger,
      rate: 10,
    });
    await vi.advanceTimersByTimeAsync(2_000);
    f.connect("late");
    await vi.advanceTimersByTimeAsync(2_000);
    expect(f.sends).toHaveLength(0);
    await dispatch.close();
  });

  it("finds what another process queued on its next poll", async () => {
    const f = fakes([], new Set(["d9"]));
    const dispatch = startCommandDispatch({
      broker: f.broker,
      commands: f.commands,
      logger: silentLogger,
      rate: 10,
    });
    await vi.advanceTimersByTimeAsync(500);
    f.store(command("c9", "d9"));
    await vi.advanceTimersByTimeAsync(1_500);
    expect(f.sends.map((s) => s.id)).toEqual(["c9"]);
    await dispatch.close();
  });
});
