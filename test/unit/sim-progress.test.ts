import { describe, expect, it } from "vitest";
import { formatDuration } from "../../contract/time.js";
import { createProgress, formatProgress } from "../../device-sim/progress.js";

function output(isTTY: boolean) {
  const written: string[] = [];
  return { written, stream: { isTTY, columns: 200, write: (text: string) => written.push(text) } };
}

describe("progress", () => {
  it.each([
    [0, "0s"],
    [59_400, "59s"],
    [95_000, "1m 35s"],
    [45 * 60_000, "45m"],
    [3_600_000 + 5 * 60_000, "1h 5m"],
    [3 * 86_400_000 + 4 * 3_600_000 + 59_000, "3d 4h"],
    [2 * 86_400_000, "2d"],
  ])("writes %i ms as %s", (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it("shows counts, the share done, the message rate and the time left at the rate so far", () => {
    const line = formatProgress(
      { label: "backfill", unit: "devices", bar: true },
      { done: 250, total: 1000, messages: 60_000 },
      30_000,
    );
    expect(line).toBe(
      "backfill  [######..................]  250/1,000 devices  25%  60,000 msgs  2,000 msg/s  ETA 1m 30s",
    );
  });

  it("leaves out messages where they mean nothing, such as while connecting", () => {
    const line = formatProgress(
      { label: "connecting", unit: "devices", bar: false, messages: false },
      { done: 10, total: 10, messages: 0 },
      2_000,
    );
    expect(line).toBe("connecting  10/10 devices  100%  2s");
  });

  it("redraws one line in place on a terminal, and ends it when finished", () => {
    let now = 0;
    const out = output(true);
    const progress = createProgress({ label: "x", unit: "devices", output: out.stream, clock: () => now });
    progress.update({ done: 1, total: 4, messages: 10 });
    now = 50;
    progress.update({ done: 2, total: 4, messages: 20 });
    now = 150;
    progress.update({ done: 3, total: 4, messages: 30 });
    progress.finish({ done: 4, total: 4, messages: 40 });
    expect(out.written).toHaveLength(3);
    expect(out.written.every((w) => w.startsWith("\r"))).toBe(true);
    expect(out.written.at(-1)).toMatch(/4\/4 devices.*\n$/);
  });

  it("writes a plain line now and then when the output is not a terminal", () => {
    let now = 0;
    const out = output(false);
    const progress = createProgress({ label: "x", unit: "devices", output: out.stream, clock: () => now });
    for (let second = 0; second < 12; second++) {
      now = second * 1000;
      progress.update({ done: second, total: 12, messages: second * 100 });
    }
    progress.finish({ done: 12, total: 12, messages: 1200 });
    // At 0 s, 5 s and 10 s, then the final line; no bar and no carriage returns.
    expect(out.written).toHaveLength(4);
    expect(out.written.every((w) => !w.includes("\r") && !w.includes("[") && w.endsWith("\n"))).toBe(true);
  });
});
