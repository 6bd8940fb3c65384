import type { Child } from "hono/jsx";
import type { ChartEmbed, ChartSpec } from "./chart-spec.js";
import { failureText, type Loaded } from "./load.js";

// The pieces every page is made of. A panel has a loading, an empty and an error state; a time is shown in the
// viewer's zone with UTC on hover; a chart is a figure with a caption and a text alternative; colour is never the
// only signal (every badge says what it means in words).

/** ISO time as UTC text; client/time.ts turns it into the viewer's local time and keeps UTC in the title. */
export function When(props: { iso: string | null | undefined; format?: "datetime" | "date" | "time" }) {
  if (props.iso === null || props.iso === undefined) return <span>–</span>;
  const utc = `${props.iso.slice(0, 16).replace("T", " ")} UTC`;
  return (
    <time datetime={props.iso} title={utc} data-format={props.format ?? "datetime"}>
      {utc}
    </time>
  );
}

/**
 * A titled panel over one API answer: its error state when the call failed, its empty state when the answer
 * holds nothing, else what render makes of it. `live` names the region client/live.ts refreshes in place.
 */
export function Panel<T>(props: {
  title: string;
  live?: string;
  loaded: Loaded<T>;
  isEmpty?: (data: T) => boolean;
  empty: string;
  render: (data: T) => Child;
  /** Beside the title: a link, a filter. */
  extra?: Child;
  wide?: boolean;
}) {
  const id = `panel-${(props.live ?? props.title).toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  const { loaded } = props;
  return (
    <section class={props.wide ? "panel wide" : "panel"} aria-labelledby={id} data-live={props.live}>
      <header class="panel-head">
        <h2 id={id}>{props.title}</h2>
        {props.extra}
      </header>
      {!loaded.ok ? (
        <ErrorState message={failureText(loaded)} />
      ) : props.isEmpty?.(loaded.data) ? (
        <p class="empty">{props.empty}</p>
      ) : (
        props.render(loaded.data)
      )}
    </section>
  );
}

export function ErrorState(props: { message: string }) {
  return (
    <p class="error" role="alert">
      <span class="badge bad">Error</span> {props.message}
    </p>
  );
}

/** A chart's spec for client/charts.ts, beside its element; `<` escaped so no text can close the script. */
export function ChartSpecScript(props: { spec: ChartSpec }) {
  const json = JSON.stringify(props.spec).replace(/</g, "\\u003c");
  return <script type="application/json" class="chart-spec" dangerouslySetInnerHTML={{ __html: json }} />;
}

/** Replaced by the chart when client/charts.ts has drawn it; the summary stays for screen readers. */
export function Chart(props: { chart: ChartEmbed }) {
  const { chart } = props;
  return (
    <figure class="chart">
      <figcaption>{chart.title}</figcaption>
      <div class="chart-canvas" data-chart style={`min-height:${chart.height ?? 180}px`} aria-hidden="true">
        <span class="loading">Loading chart…</span>
      </div>
      <ChartSpecScript spec={chart.spec} />
      <p class="chart-summary">{chart.summary}</p>
    </figure>
  );
}

type Tone = "good" | "bad" | "warn" | "muted" | "info";

/** A word on a coloured ground; the word alone carries the meaning. */
export function Badge(props: { tone: Tone; children: Child }) {
  return <span class={`badge ${props.tone}`}>{props.children}</span>;
}

/** Four severities, four tones, and the word itself. */
const SEVERITY_TONE: Record<string, Tone> = {
  critical: "bad",
  error: "warn",
  warning: "info",
  info: "muted",
};
export const Severity = (props: { severity: string }) => (
  <Badge tone={SEVERITY_TONE[props.severity] ?? "muted"}>{props.severity}</Badge>
);

const VERDICT_TONE: Record<string, Tone> = {
  regression: "bad",
  improvement: "good",
  no_difference: "muted",
  insufficient_evidence: "muted",
};
export const Verdict = (props: { verdict: string }) => (
  <Badge tone={VERDICT_TONE[props.verdict] ?? "muted"}>{props.verdict.replace(/_/g, " ")}</Badge>
);

const STATUS_TONE: Record<string, Tone> = {
  online: "good",
  offline: "muted",
  silent: "bad",
  new: "bad",
  regressed: "bad",
  acknowledged: "warn",
  investigating: "warn",
  fix_released: "info",
  verifying: "info",
  closed: "good",
  muted: "muted",
};
export const Status = (props: { status: string }) => (
  <Badge tone={STATUS_TONE[props.status] ?? "muted"}>{props.status.replace(/_/g, " ")}</Badge>
);

/** A table that scrolls sideways on a narrow screen, reachable by keyboard to do so. */
export function TableWrap(props: { label: string; children: Child }) {
  return (
    <section class="table-wrap" aria-label={props.label} tabindex={0}>
      {props.children}
    </section>
  );
}

/** Key figures in a row. */
export function Kpis(props: { items: Array<{ label: string; value: Child; note?: Child }> }) {
  return (
    <dl class="kpis">
      {props.items.map((k) => (
        <div class="kpi">
          <dt>{k.label}</dt>
          <dd>
            <span class="kpi-value">{k.value}</span>
            {k.note === undefined ? null : <span class="kpi-note">{k.note}</span>}
          </dd>
        </div>
      ))}
    </dl>
  );
}
