import { describe, expect, it } from "vitest";
import { createDevice, type DeviceSpec } from "../../device-sim/device.js";
import { buildFleet } from "../../device-sim/fleet.js";

// fieldq delivers commands at least once (docs/commands.md): the simulator's device runs a command once and
// answers a repeat of its id as it did the first time.

const T0 = Date.UTC(2025, 0, 6, 8, 0, 0);
const PRINTER = buildFleet({ devices: 2, seed: 3 })[1] as DeviceSpec;

describe("a simulated device and a repeated command", () => {
  it("runs it once and answers the repeat with the same result, ts and seq", () => {
    const device = createDevice(PRINTER, 3, T0, { offlineSpellsPerWeek: 0 });
    const first = device.command({ id: "c1-0123456789ab", type: "reboot" }, T0 + 1_000);
    const again = device.command({ id: "c1-0123456789ab", type: "reboot" }, T0 + 5_000);
    expect(first).toBeDefined();
    expect(again?.result).toEqual(first?.result);
    expect(again?.messages).toEqual([]);
    const other = device.command({ id: "c2-0123456789ab", type: "reboot" }, T0 + 6_000);
    expect(other?.result.seq).toBeGreaterThan(first?.result.seq ?? Number.POSITIVE_INFINITY);
    expect(other?.result.ts).toBe(T0 + 6_000);
  });
});
