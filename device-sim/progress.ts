import { formatDuration } from "../contract/time.js";

// Progress on stderr: a bar redrawn in place on a terminal, a plain line now and then anywhere else (a log
// file, CI), so a long backfill says how far it is without flooding what it writes to.

export type ProgressSnapshot = {
  /** Units finished out of total: devices flushed, devices connected. */
  done: number;
  total: number;
  /** Messages published so far; their rate is shown. */
  messages: number;
};

export type ProgressOutput = { isTTY?: boolean; columns?: number; write(text: string): unknown };

export type ProgressOptions = {
  label: string;
  /** What done counts, plural: "devices". */
  unit: string;
  /** Whether the messages and their rate mean anything here (default true). */
  messages?: boolean;
  output?: ProgressOutput;
  clock?: () => number;
  /** Between redraws on a terminal. */
  redrawMs?: number;
  /** Between lines when the output is not a terminal. */
  lineEveryMs?: number;
};

export type Progress = {
  update(snapshot: ProgressSnapshot): void;
  /** Draws the final state and ends the line. */
  finish(snapshot: ProgressSnapshot): void;
};

const BAR_WIDTH = 24;

/** A count as people read it: 12,180. */
export const grouped = (n: number) => Math.round(n).toLocaleString("en-US");

/** One line of progress: bar (on a terminal), counts, message rate, and the time left at the rate so far. */
export function formatProgress(
  options: { label: string; unit: string; bar: boolean; messages?: boolean },
  snapshot: ProgressSnapshot,
  elapsedMs: number,
): string {
  const { done, total, messages } = snapshot;
  const share = total > 0 ? Math.min(1, done / total) : 1;
  const parts = [options.label];
  if (options.bar) {
    const filled = Math.round(share * BAR_WIDTH);
    parts.push(`[${"#".repeat(filled)}${".".repeat(BAR_WIDTH - filled)}]`);
  }
  parts.push(`${grouped(done)}/${grouped(total)} ${options.unit}`, `${Math.floor(share * 100)}%`);
  if (options.messages !== false) {
    parts.push(`${grouped(messages)} msgs`);
    if (elapsedMs > 0) parts.push(`${grouped((messages * 1000) / elapsedMs)} msg/s`);
  }
  if (done > 0 && done < total) parts.push(`ETA ${formatDuration((elapsedMs * (total - done)) / done)}`);
  else parts.push(formatDuration(elapsedMs));
  return parts.join("  ");
}

export function createProgress(options: ProgressOptions): Progress {
  const output = options.output ?? process.stderr;
  const clock = options.clock ?? (() => performance.now());
  const tty = output.isTTY === true;
  const everyMs = tty ? (options.redrawMs ?? 100) : (options.lineEveryMs ?? 5_000);
  const started = clock();
  let last = Number.NEGATIVE_INFINITY;
  let finished = false;

  const draw = (snapshot: ProgressSnapshot, final: boolean) => {
    const line = formatProgress({ ...options, bar: tty }, snapshot, clock() - started);
    if (!tty) {
      output.write(`${line}\n`);
      return;
    }
    // \r and erase-to-end-of-line redraw in place; the line is cut to the terminal's width.
    const width = output.columns ?? 120;
    output.write(`\r${line.slice(0, Math.max(20, width - 1))}\x1b[K${final ? "\n" : ""}`);
  };

  return {
    update(snapshot) {
      if (finished) return;
      const now = clock();
      if (now - last < everyMs) return;
      last = now;
      draw(snapshot, false);
    },
    finish(snapshot) {
      if (finished) return;
      finished = true;
      draw(snapshot, true);
    },
  };
}
