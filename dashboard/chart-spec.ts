// What a page asks a chart to draw: the server puts a spec beside each chart's element as JSON, and the
// browser module (client/charts.ts) draws it with uPlot. Plain data, no DOM and no Node: both sides import it.

/** Times are epoch milliseconds; values null where there is no point (a gap, not a zero). */
export type SeriesSpec = {
  label: string;
  values: Array<number | null>;
  /** A second y axis on the right, for a series in other units. */
  axis?: "left" | "right";
};

/** A mark on the time axis: a fault, an event, a firmware update. */
export type MarkerSpec = {
  atMs: number;
  label: string;
  tone: "critical" | "major" | "minor" | "info" | "event";
};

/** A span on the time axis: online, offline, silent (a presence timeline), a firmware in use. */
export type BandSpec = {
  fromMs: number;
  toMs: number;
  label: string;
  tone: "good" | "bad" | "warn" | "muted";
};

export type ChartSpec =
  /** Lines over time, with marks and spans on the time axis. */
  | {
      kind: "series";
      x: number[];
      series: SeriesSpec[];
      unit?: string;
      markers?: MarkerSpec[];
      bands?: BandSpec[];
    }
  /** One line, no axes: a sparkline in a table row. */
  | { kind: "spark"; x: number[]; values: Array<number | null> }
  /** Bars by category, largest first, with the cumulative share as a line: a Pareto. */
  | { kind: "pareto"; labels: string[]; values: number[]; unit?: string }
  /**
   * Rate ratios with their intervals on a log axis around 1 (a forest plot): each row a ratio, a whisker from
   * low to high and the verdict as text beside it.
   */
  | {
      kind: "interval";
      rows: Array<{
        label: string;
        ratio: number | null;
        low: number | null;
        high: number | null;
        verdict: string;
      }>;
    };

/** A chart as the page embeds it: what it draws and, for people who cannot see it, what it shows. */
export type ChartEmbed = {
  spec: ChartSpec;
  /** The figure's caption. */
  title: string;
  /** One or two sentences saying what the chart shows, read by screen readers and shown without JavaScript. */
  summary: string;
  /** Pixels; the width follows the container. */
  height?: number;
};
