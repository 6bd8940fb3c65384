import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { reviewCsv } from "../api/review-csv.js";
import { reviewHtml } from "../api/review-html.js";
import type { Config } from "../config/env.js";
import { MAX_SERIES_DAYS } from "../contract/api/fleet.js";
import { REVIEW_TABLES } from "../contract/api/reports.js";
import { alignHours, DAY_MS, isoDate } from "../contract/time.js";
import { silentLogger } from "../observe/logger.js";
import { createReadServices } from "../services/read-services.js";
import { createInflux, createPointWriter } from "../storage/influx.js";
import type { CommandIo } from "./io.js";

// fieldq report --from --to: the management review as printable HTML (and CSV per table), built straight
// from InfluxDB by the same services the API uses; no API has to run.

export const REPORT_USAGE = `Usage: npm run fieldq -- report --from <ISO time> --to <ISO time> [--out review.html] [--csv <dir>]

Builds the management review (ISO 9001 §9.3) for [from, to), widened to whole UTC hours, straight from
InfluxDB: the Pareto of fault families, promise compliance, issues opened, closed and verified effective,
overdue actions, firmware verdicts, customer feedback beside fault rates.

  --from <ISO time>   start, inclusive (default: 30 days before --to)
  --to <ISO time>     end, exclusive (default: now)
  --out <file>        the printable HTML (default: fieldq-review-<from>-<to>.html in this folder)
  --csv <dir>         also write one CSV per table (${REVIEW_TABLES.join(", ")}) into this folder
  -h, --help          this text

Progress goes to stderr; the paths written to stdout.`;

type Values = { from?: string; to?: string; out?: string; csv?: string; help?: boolean };

export async function reportCommand(
  args: string[],
  config: () => Config | undefined,
  io: CommandIo,
): Promise<number> {
  let values: Values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        from: { type: "string" },
        to: { type: "string" },
        out: { type: "string" },
        csv: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (error) {
    io.err(`fieldq report: ${error instanceof Error ? error.message : String(error)} (report --help)`);
    return 2;
  }
  if (values.help) {
    io.out(REPORT_USAGE);
    return 0;
  }
  const toMs = values.to === undefined ? Date.now() : Date.parse(values.to);
  const fromMs = values.from === undefined ? toMs - 30 * DAY_MS : Date.parse(values.from);
  if (!Number.isFinite(fromMs) || !Number.isFinite(toMs) || fromMs >= toMs) {
    io.err("fieldq report: --from and --to take ISO times (2026-03-01T00:00:00Z), from before to");
    return 2;
  }
  const window = alignHours({ fromMs, toMs });
  if (window.toMs - window.fromMs > MAX_SERIES_DAYS * DAY_MS) {
    io.err(`fieldq report: --from and --to span more than ${MAX_SERIES_DAYS} days: choose a shorter window`);
    return 2;
  }
  const cfg = config();
  if (!cfg) return 2;

  const influx = createInflux(cfg.influx);
  const read = createReadServices(influx, {
    // The review only reads; the writer is what the read side is built with.
    write: createPointWriter(cfg.influx),
    logger: silentLogger,
    files: { promises: cfg.promises.file },
  });
  try {
    const promises = await read.promises.load();
    if (!promises.ok) {
      io.err(`fieldq report: FIELDQ_PROMISES: ${promises.error}`);
      return 2;
    }
    io.err(
      `report: reading ${cfg.influx.url} database ${cfg.influx.database} for ${isoDate(window.fromMs)} to ${isoDate(window.toMs)}`,
    );
    const started = performance.now();
    const report = await read.review.report(window);
    io.err(`report: built in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    const htmlPath = resolve(
      values.out ?? `fieldq-review-${isoDate(window.fromMs)}-${isoDate(window.toMs)}.html`,
    );
    await writeFile(htmlPath, reviewHtml(report));
    io.out(htmlPath);
    if (values.csv !== undefined) {
      const dir = resolve(values.csv);
      await mkdir(dir, { recursive: true });
      for (const table of REVIEW_TABLES) {
        const path = join(dir, `${table}.csv`);
        await writeFile(path, reviewCsv(report, table));
        io.out(path);
      }
    }
    return 0;
  } catch (error) {
    io.err(`fieldq report: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  } finally {
    read.close();
  }
}
