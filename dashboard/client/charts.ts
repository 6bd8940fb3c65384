import uPlot from "uplot";
import type { BandSpec, ChartSpec, MarkerSpec } from "../chart-spec.js";

// Draws every chart a page embeds (components.tsx Chart): the spec is the JSON script beside the element. One
// uPlot per element; marks, spans and the forest plot are canvas hooks on it, so every kind shares uPlot's
// sizing, axes and cursor. The figure's caption and summary stay the text alternative.

// Lines on white: each at least 4.5:1, and told apart by the legend's words, not by colour alone.
const PALETTE = ["#0b57d0", "#b3261e", "#1e7b34", "#8a4b00", "#6b3fa0", "#00706a", "#a0216b", "#3c4650"];
const DASHES: number[][] = [[], [6, 3], [2, 3], [10, 3, 2, 3]];
const INK = "#4f5863";
const colour = (i: number): string => PALETTE[i % PALETTE.length] ?? INK;
const GRID = "#e3e7eb";
const FONT = "12px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";

const MARKER_TONE: Record<MarkerSpec["tone"], string> = {
  critical: "#b3261e",
  major: "#8a4b00",
  minor: "#0b57d0",
  info: "#4f5863",
  event: "#6b3fa0",
};
const BAND_TONE: Record<BandSpec["tone"], string> = {
  good: "rgba(30, 123, 52, 0.16)",
  bad: "rgba(179, 38, 30, 0.18)",
  warn: "rgba(200, 130, 0, 0.2)",
  muted: "rgba(79, 88, 99, 0.14)",
};
const VERDICT_TONE: Record<string, string> = { regression: "#b3261e", improvement: "#1e7b34" };

type Drawn = { el: HTMLElement; plot: uPlot; observer: ResizeObserver };
const drawn = new Set<Drawn>();

export function drawCharts(root: ParentNode): void {
  // Charts whose region live.ts replaced: let their plots and observers go.
  for (const chart of drawn) if (!chart.el.isConnected) forget(chart);
  for (const el of root.querySelectorAll<HTMLElement>("[data-chart]:not([data-drawn])")) {
    try {
      const script = el.parentElement?.querySelector("script.chart-spec");
      if (!script?.textContent) throw new Error("no spec");
      draw(el, JSON.parse(script.textContent) as ChartSpec);
    } catch {
      // A bad spec costs one chart, never the page: say so in place; the summary below still reads.
      el.dataset.drawn = "error";
      const note = document.createElement("p");
      note.className = "chart-error";
      note.textContent = "This chart could not be drawn; its summary is below.";
      el.replaceChildren(note);
    }
  }
}

function forget(chart: Drawn): void {
  chart.observer.disconnect();
  chart.plot.destroy();
  drawn.delete(chart);
}

function draw(el: HTMLElement, spec: ChartSpec): void {
  const height = Number.parseInt(el.style.minHeight, 10) || 180;
  const width = Math.max(el.clientWidth, 120);
  const [opts, data] = build(spec);
  el.replaceChildren();
  const plot = new uPlot({ ...opts, width, height }, data, el);
  el.dataset.drawn = spec.kind;
  let lastWidth = width;
  const chart: Drawn = {
    el,
    plot,
    observer: new ResizeObserver(() => {
      if (!el.isConnected) return forget(chart);
      const next = Math.max(el.clientWidth, 120);
      if (next === lastWidth) return;
      lastWidth = next;
      plot.setSize({ width: next, height });
    }),
  };
  chart.observer.observe(el);
  drawn.add(chart);
}

function build(spec: ChartSpec): [Omit<uPlot.Options, "width" | "height">, uPlot.AlignedData] {
  switch (spec.kind) {
    case "series":
      return series(spec);
    case "spark":
      return spark(spec);
    case "pareto":
      return pareto(spec);
    case "interval":
      return interval(spec);
    default:
      throw new Error("unknown chart kind");
  }
}

const axis = (extra: uPlot.Axis = {}): uPlot.Axis => ({
  stroke: INK,
  font: FONT,
  grid: { stroke: GRID, width: 1 },
  ticks: { stroke: GRID, width: 1 },
  ...extra,
});

const number = (v: number | null | undefined, digits = 2): string =>
  v === null || v === undefined || !Number.isFinite(v)
    ? "–"
    : new Intl.NumberFormat(undefined, { maximumFractionDigits: digits }).format(v);

/** A hover note inside the plot: the label of a mark, a span, a row. */
function tip(u: uPlot): HTMLElement {
  let el = u.over.querySelector<HTMLElement>(".chart-tip");
  if (!el) {
    el = document.createElement("div");
    el.className = "chart-tip";
    el.hidden = true;
    u.over.appendChild(el);
  }
  return el;
}

function showTip(u: uPlot, text: string | null): void {
  const el = tip(u);
  const { left, top } = u.cursor;
  if (text === null || left === undefined || top === undefined || left < 0) {
    el.hidden = true;
    return;
  }
  el.textContent = text;
  el.hidden = false;
  const overWidth = u.over.clientWidth;
  // Keep the note inside the plot: flip to the left of the cursor near the right edge.
  el.style.left = `${left + 12 + el.offsetWidth > overWidth ? Math.max(0, left - 12 - el.offsetWidth) : left + 12}px`;
  el.style.top = `${Math.max(0, top - 28)}px`;
}

const timeText = (ms: number): string =>
  new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" }).format(new Date(ms));

function series(
  spec: Extract<ChartSpec, { kind: "series" }>,
): [Omit<uPlot.Options, "width" | "height">, uPlot.AlignedData] {
  const markers = spec.markers ?? [];
  const bands = spec.bands ?? [];
  const right = spec.series.some((s) => s.axis === "right");
  const unit = spec.unit ?? "";
  const opts: Omit<uPlot.Options, "width" | "height"> = {
    scales: { x: { time: true } },
    series: [
      { label: "Time", value: (_u, v) => (v === null ? "–" : timeText(v * 1000)) },
      ...spec.series.map((s, i) => ({
        label: s.label,
        scale: s.axis === "right" ? "r" : "y",
        stroke: colour(i),
        dash: DASHES[Math.floor(i / PALETTE.length) % DASHES.length] ?? [],
        width: 2,
        spanGaps: false,
        points: { show: spec.x.length < 40 },
        value: (_u: uPlot, v: number | null) =>
          v === null ? "–" : `${number(v)}${unit && s.axis !== "right" ? ` ${unit}` : ""}`,
      })),
    ],
    axes: [
      axis({ space: 70, ...(daily(spec.x) ? { incrs: DAY_INCRS } : {}) }),
      axis({ scale: "y", ...(unit ? { label: unit, labelFont: FONT, labelSize: 18 } : {}), size: 52 }),
      ...(right ? [axis({ scale: "r", side: 1, grid: { show: false }, size: 52 })] : []),
    ],
    legend: { show: spec.series.length > 0 },
    cursor: { drag: { x: false, y: false }, points: { size: 6 } },
    hooks: {
      drawClear: [(u) => drawBands(u, bands)],
      draw: [(u) => drawMarkers(u, markers)],
      setCursor: [
        (u) => {
          const left = u.cursor.left;
          if (left === undefined || left < 0) return showTip(u, null);
          const near = markers.filter((m) => Math.abs(u.valToPos(m.atMs / 1000, "x") - left) <= 6);
          if (near.length > 0) {
            return showTip(u, near.map((m) => `${m.label} · ${timeText(m.atMs)}`).join("\n"));
          }
          const at = u.posToVal(left, "x") * 1000;
          const band = bands.find((b) => b.fromMs <= at && at < b.toMs);
          showTip(u, band ? `${band.label}: ${timeText(band.fromMs)} – ${timeText(band.toMs)}` : null);
        },
      ],
    },
  };
  // With no series (a presence timeline of bands only) uPlot still needs a y scale to size the plot.
  const values = spec.series.length > 0 ? spec.series.map((s) => s.values) : [spec.x.map(() => null)];
  if (spec.series.length === 0) {
    opts.series.push({ label: "", scale: "y", show: true, stroke: "transparent", points: { show: false } });
    opts.scales = { ...opts.scales, y: { range: [0, 1] } };
    opts.axes = [axis({ space: 70 }), { show: false }];
    opts.legend = { show: false };
  }
  return [opts, [spec.x.map((ms) => ms / 1000), ...values]];
}

const DAY_S = 86_400;
/** Ticks of whole days for daily data: uPlot would otherwise label hours between the points. */
const DAY_INCRS = [DAY_S, 2 * DAY_S, 7 * DAY_S, 14 * DAY_S, 28 * DAY_S, 91 * DAY_S, 365 * DAY_S];
const daily = (x: number[]) =>
  x.length > 1 && x.every((t, i) => i === 0 || t - (x[i - 1] ?? t) >= DAY_S * 1000 * 0.99);

function drawBands(u: uPlot, bands: BandSpec[]): void {
  if (bands.length === 0) return;
  const { ctx } = u;
  const { left, top, width, height } = u.bbox;
  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top, width, height);
  ctx.clip();
  ctx.font = `${Math.round(12 * devicePixelRatio)}px system-ui, sans-serif`;
  ctx.textBaseline = "top";
  for (const band of bands) {
    const x0 = u.valToPos(band.fromMs / 1000, "x", true);
    const x1 = u.valToPos(band.toMs / 1000, "x", true);
    if (!(x1 > x0)) continue;
    ctx.fillStyle = BAND_TONE[band.tone] ?? BAND_TONE.muted;
    ctx.fillRect(x0, top, x1 - x0, height);
    // The span's word where it fits, so colour is not the only signal.
    const text = ctx.measureText(band.label).width;
    if (x1 - x0 > text + 8 * devicePixelRatio) {
      ctx.fillStyle = "#1a1d21";
      ctx.fillText(band.label, Math.max(x0, left) + 4 * devicePixelRatio, top + 4 * devicePixelRatio);
    }
  }
  ctx.restore();
}

function drawMarkers(u: uPlot, markers: MarkerSpec[]): void {
  if (markers.length === 0) return;
  const { ctx } = u;
  const { left, top, width, height } = u.bbox;
  const px = devicePixelRatio;
  ctx.save();
  for (const m of markers) {
    const x = u.valToPos(m.atMs / 1000, "x", true);
    if (x < left - 1 || x > left + width + 1) continue;
    const colour = MARKER_TONE[m.tone] ?? MARKER_TONE.info;
    ctx.strokeStyle = colour;
    ctx.globalAlpha = 0.35;
    ctx.lineWidth = px;
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, top + height);
    ctx.stroke();
    ctx.globalAlpha = 1;
    ctx.fillStyle = colour;
    ctx.beginPath();
    const base = top + height;
    ctx.moveTo(x, base - 9 * px);
    ctx.lineTo(x - 5 * px, base);
    ctx.lineTo(x + 5 * px, base);
    ctx.closePath();
    ctx.fill();
  }
  ctx.restore();
}

function spark(
  spec: Extract<ChartSpec, { kind: "spark" }>,
): [Omit<uPlot.Options, "width" | "height">, uPlot.AlignedData] {
  return [
    {
      scales: { x: { time: false } },
      series: [{}, { stroke: colour(0), width: 1.5, points: { show: false }, spanGaps: false }],
      axes: [{ show: false }, { show: false }],
      legend: { show: false },
      cursor: { show: false },
      padding: [3, 2, 3, 2],
    },
    [spec.x.map((ms) => ms / 1000), spec.values],
  ];
}

function pareto(
  spec: Extract<ChartSpec, { kind: "pareto" }>,
): [Omit<uPlot.Options, "width" | "height">, uPlot.AlignedData] {
  const total = spec.values.reduce((a, v) => a + v, 0);
  let running = 0;
  const cumulative = spec.values.map((v) => {
    running += v;
    return total > 0 ? (100 * running) / total : 0;
  });
  const xs = spec.labels.map((_, i) => i);
  const bars = uPlot.paths.bars?.({ size: [0.7, 80], align: 0 });
  const unit = spec.unit ?? "";
  // Category names under the bars where they fit; else ranks (#1, #2…) that the page's table repeats.
  const tick = (u: uPlot, i: number): string => {
    const perBar = (u.width - 120) / Math.max(spec.labels.length, 1);
    const chars = Math.floor(perBar / 6.8) - 1;
    const label = spec.labels[i] ?? "";
    if (chars < 5) return `#${i + 1}`;
    return label.length > chars ? `${label.slice(0, chars - 1)}…` : label;
  };
  return [
    {
      scales: {
        x: { time: false, range: [-0.5, Math.max(spec.labels.length - 0.5, 0.5)] },
        y: { range: (_u, _min, max) => [0, Math.max(max, 1) * 1.08] },
        pct: { range: [0, 100] },
      },
      series: [
        { label: "Item", value: (_u, v) => (v === null ? "–" : `#${v + 1} ${spec.labels[v] ?? ""}`) },
        {
          label: unit || "Count",
          stroke: colour(0),
          fill: "rgba(11, 87, 208, 0.55)",
          ...(bars ? { paths: bars } : {}),
          points: { show: false },
          value: (_u, v) => number(v),
        },
        {
          label: "Cumulative share",
          scale: "pct",
          stroke: colour(1),
          width: 2,
          points: { show: true, size: 5, fill: colour(1) },
          value: (_u, v) => (v === null ? "–" : `${number(v, 0)} %`),
        },
      ],
      axes: [
        axis({
          splits: () => xs,
          values: (u, splits) => splits.map((i) => tick(u, i)),
          grid: { show: false },
          gap: 4,
        }),
        axis({ size: 52, ...(unit ? { label: unit, labelFont: FONT, labelSize: 18 } : {}) }),
        axis({
          scale: "pct",
          side: 1,
          grid: { show: false },
          size: 56,
          values: (_u, splits) => splits.map((v) => `${v}%`),
        }),
      ],
      cursor: { drag: { x: false, y: false }, points: { show: false } },
    },
    [xs, spec.values, cumulative],
  ];
}

function interval(
  spec: Extract<ChartSpec, { kind: "interval" }>,
): [Omit<uPlot.Options, "width" | "height">, uPlot.AlignedData] {
  const rows = spec.rows;
  type Row = (typeof rows)[number];
  const finite = rows
    .flatMap((r) => [r.ratio, r.low, r.high])
    .filter((v): v is number => v !== null && Number.isFinite(v) && v > 0);
  // Symmetric on the log axis around 1, so a halving and a doubling sit the same distance from "no change".
  const reach = Math.max(2, ...finite.map((v) => Math.max(v, 1 / v))) * 1.15;
  const [lo, hi] = [1 / reach, reach];
  const n = rows.length;
  const verdictText = (r: Row | undefined) => (r ? r.verdict.replace(/_/g, " ") : "");
  // Row names on the left, verdict words on the right (colour is never the only signal); both shrink with the
  // chart's width, which follows the container, so they are measured from it at every draw.
  const CHAR = 7.4;
  const longest = (texts: string[]) => Math.max(...texts.map((t) => t.length), 3) * CHAR + 14;
  const leftRoom = (u: uPlot) => Math.min(longest(rows.map((r) => r.label)), u.width * 0.36);
  const rightRoom = (u: uPlot) => Math.min(longest(rows.map(verdictText)), u.width * 0.28);
  const clip = (s: string, room: number) => {
    const chars = Math.max(Math.floor((room - 14) / CHAR), 2);
    return s.length > chars ? `${s.slice(0, chars - 1)}…` : s;
  };
  // As many ticks as fit, about 38 px each: a phone gets the powers of ten and 1.
  const TICK_SETS = [
    [0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20],
    [0.1, 0.5, 1, 2, 10],
    [0.5, 1, 2],
    [0.1, 1, 10],
  ];
  const ticks = (u: uPlot) => {
    const sets = TICK_SETS.map((set) => set.filter((t) => t >= lo && t <= hi));
    return (
      sets.find((set) => set.length * 38 <= u.bbox.width / devicePixelRatio) ?? sets[sets.length - 1] ?? [1]
    );
  };
  const rowY = (i: number) => n - 1 - i;
  const rowSplits = () => rows.map((_, i) => rowY(i));
  return [
    {
      scales: {
        x: { time: false, distr: 3, log: 10, range: [lo, hi] },
        rows: { range: [-0.6, Math.max(n - 0.4, 0.4)] },
      },
      series: [{}, { scale: "rows", stroke: "transparent", points: { show: false } }],
      axes: [
        axis({
          splits: (u) => ticks(u),
          // uPlot thins a log axis's labels to powers of ten; these few always fit.
          filter: (_u, splits) => splits,
          values: (_u, splits) => splits.map((v) => `${v}×`),
        }),
        axis({
          scale: "rows",
          size: (u) => leftRoom(u),
          splits: rowSplits,
          values: (u, splits) => splits.map((y) => clip(rows[n - 1 - y]?.label ?? "", leftRoom(u))),
          grid: { stroke: GRID, width: 1 },
        }),
        axis({
          scale: "rows",
          side: 1,
          size: (u) => rightRoom(u),
          splits: rowSplits,
          values: (u, splits) => splits.map((y) => clip(verdictText(rows[n - 1 - y]), rightRoom(u))),
          grid: { show: false },
          ticks: { show: false },
        }),
      ],
      legend: { show: false },
      cursor: { drag: { x: false, y: false }, points: { show: false }, y: false },
      hooks: {
        draw: [
          (u) => {
            const { ctx } = u;
            const { top, height: h } = u.bbox;
            const px = devicePixelRatio;
            ctx.save();
            const one = u.valToPos(1, "x", true);
            ctx.strokeStyle = "#1a1d21";
            ctx.lineWidth = px;
            ctx.setLineDash([4 * px, 3 * px]);
            ctx.beginPath();
            ctx.moveTo(one, top);
            ctx.lineTo(one, top + h);
            ctx.stroke();
            ctx.setLineDash([]);
            rows.forEach((r, i) => {
              if (r.ratio === null || !(r.ratio > 0)) return;
              const y = u.valToPos(rowY(i), "rows", true);
              const colour = VERDICT_TONE[r.verdict] ?? INK;
              ctx.strokeStyle = colour;
              ctx.fillStyle = colour;
              ctx.lineWidth = 2 * px;
              if (r.low !== null && r.high !== null && r.low > 0 && r.high > 0) {
                const x0 = u.valToPos(Math.max(r.low, lo), "x", true);
                const x1 = u.valToPos(Math.min(r.high, hi), "x", true);
                ctx.beginPath();
                ctx.moveTo(x0, y);
                ctx.lineTo(x1, y);
                for (const x of [x0, x1]) {
                  ctx.moveTo(x, y - 5 * px);
                  ctx.lineTo(x, y + 5 * px);
                }
                ctx.stroke();
              }
              const x = u.valToPos(r.ratio, "x", true);
              ctx.beginPath();
              // A square for a verdict either way, a circle otherwise: the shape repeats the label's word.
              if (VERDICT_TONE[r.verdict]) ctx.rect(x - 5 * px, y - 5 * px, 10 * px, 10 * px);
              else ctx.arc(x, y, 4.5 * px, 0, 2 * Math.PI);
              ctx.fill();
            });
            ctx.restore();
          },
        ],
        setCursor: [
          (u) => {
            const top = u.cursor.top;
            if (top === undefined || top < 0) return showTip(u, null);
            const i = n - 1 - Math.round(u.posToVal(top, "rows"));
            const r = rows[i];
            showTip(
              u,
              r
                ? `${r.label}: ${number(r.ratio)}× (${number(r.low)}–${number(r.high)}), ${r.verdict.replace(/_/g, " ")}`
                : null,
            );
          },
        ],
      },
    },
    [
      [lo, hi],
      [null, null],
    ],
  ];
}
