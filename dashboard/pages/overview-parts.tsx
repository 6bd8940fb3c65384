import type { FirmwareVersions, FleetSummary, FleetTrend } from "../../contract/api/fleet.js";
import type { IssueListItem } from "../../contract/api/issues.js";
import type { RegressionVerdict } from "../../contract/api/regressions.js";
import { DAY_MS } from "../../contract/time.js";
import type { ChartEmbed } from "../chart-spec.js";
import { Badge, Severity, Status, TableWrap, Verdict, When } from "../components.js";
import { count, decimal, percent, ratioText } from "../format.js";

// The overview's pieces: pure, data in, markup out (overview.tsx loads the data).

/**
 * A line in "since yesterday": only what fieldq has already judged (a new issue, a verdict the regression scan
 * reached, a device gone silent). A raw day-over-day rate is not a verdict: where devices differ it rises and
 * falls by chance (docs/statistics.md), and a table of such rises would cry wolf every morning.
 */
export type SinceYesterday = {
  what: "regression" | "new issue" | "regressed issue" | "silent";
  label: string;
  href: string;
  detail: string;
  atIso: string;
};

type SilentDevice = { id: string; model: string; firmware: string; lastReport: string | null };

export function sinceYesterday(
  input: {
    findings: RegressionVerdict[];
    issues: IssueListItem[];
    silent: SilentDevice[];
  },
  dayAgoMs: number,
): SinceYesterday[] {
  const recent = (iso: string | null) => iso !== null && Date.parse(iso) >= dayAgoMs;
  const rows: SinceYesterday[] = [];
  for (const f of input.findings) {
    if (!recent(f.firstReached) || f.verdict !== "regression") continue;
    const { code, c } = evidenceOf(f);
    rows.push({
      what: "regression",
      label: subjectText(f),
      href: f.model === null ? "/firmware" : `/firmware?model=${encodeURIComponent(f.model)}`,
      detail: `${code ?? "all faults"}: rate ratio ${ratioText(c.rateRatio, c.ci?.lower ?? null, c.ci?.upper ?? null)}`,
      atIso: f.firstReached,
    });
  }
  for (const i of input.issues) {
    if (i.status === "regressed" && recent(i.lastSeen)) {
      rows.push({
        what: "regressed issue",
        label: issueLabel(i),
        href: `/issues/${i.id}`,
        detail: `${count(i.affectedDevices)} devices`,
        atIso: i.lastSeen,
      });
    } else if (recent(i.firstSeen)) {
      rows.push({
        what: "new issue",
        label: issueLabel(i),
        href: `/issues/${i.id}`,
        detail: `${count(i.occurrences)} occurrences on ${count(i.affectedDevices)} devices`,
        atIso: i.firstSeen,
      });
    }
  }
  for (const d of input.silent) {
    if (d.lastReport === null || !recent(d.lastReport)) continue;
    rows.push({
      what: "silent",
      label: d.id,
      href: `/devices/${encodeURIComponent(d.id)}`,
      detail: `${d.model} ${d.firmware}`,
      atIso: d.lastReport,
    });
  }
  return rows.sort((a, b) => Date.parse(b.atIso) - Date.parse(a.atIso));
}

const SINCE_TONE = {
  regression: "bad",
  "regressed issue": "bad",
  "new issue": "warn",
  silent: "warn",
} as const;

export function SinceTable(props: { rows: SinceYesterday[] }) {
  return (
    <TableWrap label="What changed in the last 24 hours">
      <table>
        <thead>
          <tr>
            <th scope="col">What</th>
            <th scope="col">Which</th>
            <th scope="col">Detail</th>
            <th scope="col">When</th>
          </tr>
        </thead>
        <tbody>
          {props.rows.map((r) => (
            <tr>
              <td>
                <Badge tone={SINCE_TONE[r.what]}>{r.what}</Badge>
              </td>
              <th scope="row">
                <a href={r.href}>{r.label}</a>
              </th>
              <td>{r.detail}</td>
              <td>
                <When iso={r.atIso} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableWrap>
  );
}

/** Per model or per firmware: faults per 1,000 device-hours per UTC day, one line each. */
export function trendChart(
  lines: Array<{ label: string; trend: FleetTrend }>,
  title: string,
  what: string,
): ChartEmbed | null {
  const first = lines[0];
  if (first === undefined) return null;
  const x = first.trend.days.map((d) => Date.parse(d.day));
  const series = lines.map((l) => ({
    label: l.label,
    values: x.map((ms) => l.trend.days.find((d) => Date.parse(d.day) === ms)?.faults.per1000h ?? null),
  }));
  const latest = series
    .map((s) => ({ label: s.label, value: [...s.values].reverse().find((v) => v !== null) ?? null }))
    .filter((s): s is { label: string; value: number } => s.value !== null)
    .sort((a, b) => b.value - a.value);
  const worst = latest[0];
  return {
    title,
    spec: { kind: "series", x, series, unit: "per 1,000 h" },
    height: 220,
    summary:
      worst === undefined
        ? `Faults per 1,000 device-hours per day ${what}: no exposure in the window.`
        : `Faults per 1,000 device-hours per day ${what}, ${x.length} days. Latest day: ${latest
            .map((s) => `${s.label} ${decimal(s.value)}`)
            .join(", ")}.`,
  };
}

export function DaysWithData(props: { trend: FleetTrend }) {
  const days = props.trend.days.filter((d) => d.exposureHours > 0).length;
  return (
    <p class="ov-note">
      {days} of {props.trend.days.length} days have exposure; a day without any is a gap, not a zero.
    </p>
  );
}

/** How an issue reads in a chart: its code(s) and model, short. */
export const issueLabel = (issue: IssueListItem) => `${issue.codes.join("+")} · ${issue.model}`;

export const TOP_ISSUES = 8;

export function paretoChart(issues: IssueListItem[], total: number): ChartEmbed {
  const top = issues.slice(0, TOP_ISSUES);
  const rest = issues.slice(TOP_ISSUES);
  const restCount = rest.reduce((a, i) => a + i.occurrences, 0);
  const labels = top.map(issueLabel);
  const values = top.map((i) => i.occurrences);
  if (restCount > 0) {
    labels.push(`${count(total - top.length)} other issues`);
    values.push(restCount);
  }
  const all = values.reduce((a, v) => a + v, 0);
  let running = 0;
  const needed = values.findIndex((v) => {
    running += v;
    return running >= all * 0.8;
  });
  return {
    title: "Occurrences by issue, largest first, with the cumulative share",
    spec: { kind: "pareto", labels, values, unit: "occurrences" },
    height: 240,
    summary: `${count(all)} occurrences in the window; the top ${needed + 1} of ${labels.length} bars give 80% of them. The largest: ${labels[0] ?? "none"} with ${count(values[0] ?? 0)}.`,
  };
}

export function IssueTable(props: { issues: IssueListItem[]; total: number }) {
  const all = props.issues.reduce((a, i) => a + i.occurrences, 0);
  return (
    <TableWrap label="Top issues by occurrences">
      <table>
        <thead>
          <tr>
            <th scope="col" class="num">
              #
            </th>
            <th scope="col">Issue</th>
            <th scope="col">Severity</th>
            <th scope="col">Status</th>
            <th scope="col" class="num">
              Occurrences
            </th>
            <th scope="col" class="num">
              Share
            </th>
            <th scope="col" class="num">
              Devices
            </th>
          </tr>
        </thead>
        <tbody>
          {props.issues.slice(0, TOP_ISSUES).map((issue, i) => (
            <tr>
              <td class="num">{i + 1}</td>
              <th scope="row">
                <a href={`/issues/${encodeURIComponent(issue.id)}`}>{issueLabel(issue)}</a>
              </th>
              <td>{issue.worstSeverity === null ? "–" : <Severity severity={issue.worstSeverity} />}</td>
              <td>
                <Status status={issue.status} />
              </td>
              <td class="num">{count(issue.occurrences)}</td>
              <td class="num">{all > 0 ? percent(issue.occurrences / all) : "–"}</td>
              <td class="num">{count(issue.affectedDevices)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {props.total > TOP_ISSUES ? (
        <p class="ov-note">
          <a href="/issues?sort=occurrences">All {count(props.total)} issues</a>
        </p>
      ) : null}
    </TableWrap>
  );
}

type Model = FirmwareVersions["models"][number];

/** Share of a model's devices per version, over the last 24 h of the window (devicesNow). */
export function AdoptionTable(props: { models: Model[] }) {
  return (
    <TableWrap label="Firmware versions per model">
      <table>
        <thead>
          <tr>
            <th scope="col">Model</th>
            <th scope="col">Firmware</th>
            <th scope="col" class="num">
              Devices now
            </th>
            <th scope="col">Share of the model</th>
            <th scope="col">First seen</th>
          </tr>
        </thead>
        <tbody>
          {props.models.flatMap((m) => {
            const now = m.versions.reduce((a, v) => a + v.devicesNow, 0);
            return [...m.versions].reverse().map((v, i) => {
              const share = now > 0 ? v.devicesNow / now : null;
              return (
                <tr class={i === 0 ? "ov-group" : undefined}>
                  {i === 0 ? (
                    <th scope="row" rowspan={m.versions.length}>
                      <a href={`/firmware?model=${encodeURIComponent(m.model)}`}>{m.model}</a>
                    </th>
                  ) : null}
                  <td>{v.firmware}</td>
                  <td class="num">{count(v.devicesNow)}</td>
                  <td>
                    <span class="ov-share">
                      <span class="ov-bar" style={`width:${Math.round((share ?? 0) * 100)}%`} />
                    </span>{" "}
                    {percent(share)}
                  </td>
                  <td>
                    <When iso={v.firstSeen} format="date" />
                  </td>
                </tr>
              );
            });
          })}
        </tbody>
      </table>
    </TableWrap>
  );
}

/** The chosen model's versions: share of its active devices per day. */
export function adoptionChart(model: Model): ChartEmbed {
  const days = model.devicesByDay.map((d) => d.day);
  const x = days.map((d) => Date.parse(d));
  const series = model.versions.map((v) => ({
    label: v.firmware,
    values: days.map((day) => {
      const share = v.adoption.find((a) => a.day === day)?.share;
      return share === null || share === undefined ? null : Math.round(share * 1000) / 10;
    }),
  }));
  const newest = model.versions[model.versions.length - 1];
  return {
    title: `${model.model}: share of active devices per firmware, per day`,
    spec: { kind: "series", x, series, unit: "% of devices" },
    height: 200,
    summary: `${model.versions.length} versions of ${model.model} active in the window${
      newest === undefined
        ? ""
        : `; the newest, ${newest.firmware}, runs on ${count(newest.devicesNow)} devices now`
    }.`,
  };
}

/** What a scan's finding is about, in words. */
export function subjectText(item: RegressionVerdict): string {
  const { subject } = item;
  if (subject.kind === "firmware") {
    const base =
      subject.baseline === "predecessor" ? subject.baselineFirmware.join(", ") : "the rest of the model";
    return `${item.model ?? item.deviceKind} firmware ${subject.firmware} vs ${base}`;
  }
  const scope = subject.scope === "model" ? (item.model ?? item.deviceKind) : `every ${item.deviceKind}`;
  return `${subject.dimension === "isp" ? "ISP" : subject.dimension} ${subject.value} vs the rest of ${scope}`;
}

/** The same, short enough for a chart's row label. */
function shortSubject(item: RegressionVerdict): string {
  const { subject } = item;
  if (subject.kind === "firmware") {
    const base = subject.baseline === "predecessor" ? subject.baselineFirmware.join(", ") : "rest";
    return `${item.model ?? item.deviceKind} ${subject.firmware} vs ${base}`;
  }
  const name = subject.dimension === "isp" ? "ISP" : subject.dimension;
  return `${name} ${subject.value} (${subject.scope === "model" ? (item.model ?? item.deviceKind) : item.deviceKind})`;
}

/** The comparison behind the verdict: overall when it says so, else the first code's. */
function evidenceOf(item: RegressionVerdict) {
  const code = item.codes[0];
  if (item.overall.verdict === item.verdict || code === undefined) return { code: null, c: item.overall };
  return { code: code.code, c: code.comparison };
}

export function regressionChart(items: RegressionVerdict[]): ChartEmbed {
  const rows = items.map((item) => {
    const { code, c } = evidenceOf(item);
    return {
      label: `${shortSubject(item)}${code === null ? "" : ` (${code})`}`,
      ratio: c.rateRatio,
      low: c.ci?.lower ?? null,
      high: c.ci?.upperUnbounded ? null : (c.ci?.upper ?? null),
      verdict: item.verdict,
    };
  });
  return {
    title: "Rate ratio against the baseline, with its 95% interval (log scale; 1 = the same)",
    spec: { kind: "interval", rows },
    height: 60 + 34 * rows.length,
    summary: rows
      .map((r) => `${r.label}: ${r.verdict}, rate ratio ${ratioText(r.ratio, r.low, r.high)}`)
      .join("; "),
  };
}

export function RegressionList(props: { items: RegressionVerdict[] }) {
  return (
    <ul class="ov-findings">
      {props.items.map((item) => {
        const { code, c } = evidenceOf(item);
        const href = item.model === null ? "/firmware" : `/firmware?model=${encodeURIComponent(item.model)}`;
        return (
          <li>
            <Verdict verdict={item.verdict} /> <a href={href}>{subjectText(item)}</a>
            <span class="ov-finding-detail">
              {code === null ? "Overall" : code} rate ratio{" "}
              {ratioText(c.rateRatio, c.ci?.lower ?? null, c.ci?.upper ?? null)}
              {item.verdict === "regression" && item.codes.length > 0
                ? `; worse on ${item.codes.map((x) => x.code).join(", ")}`
                : ""}
              . Found <When iso={item.firstReached} />.
            </span>
          </li>
        );
      })}
    </ul>
  );
}

/** Whole days the window covers, for the trend's x axis and the notes. */
export const windowDays = (summary: FleetSummary) =>
  Math.round((Date.parse(summary.to) - Date.parse(summary.from)) / DAY_MS);
