import type { Child } from "hono/jsx";
import { FEEDBACK_CATEGORIES } from "../contract/api/feedback.js";
import { REVIEW_TABLES, type ReviewReport, type ReviewTable } from "../contract/api/reports.js";

// The review as one printable HTML document: its styles inline, no script, no external resource. hono/jsx
// escapes every text and attribute, so what devices and people wrote (feedback, labels) stays text.

const STYLE = `
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1a1a1a;margin:2rem auto;max-width:72rem;padding:0 1rem}
h1{font-size:1.6rem;margin:0 0 .25rem}
h2{font-size:1.2rem;margin:2rem 0 .25rem;border-bottom:2px solid #333;padding-bottom:.2rem}
p.meta,p.sample{color:#444;margin:.2rem 0 .6rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem;font-variant-numeric:tabular-nums}
th,td{border:1px solid #bbb;padding:.25rem .45rem;text-align:left;vertical-align:top}
th{background:#eee}
td.n{text-align:right}
.empty{font-style:italic;color:#555}
.flag{font-weight:600}
nav ul{columns:2;padding-left:1.2rem}
@media print{body{margin:0;max-width:none;font-size:11px}h2{break-after:avoid}tr{break-inside:avoid}nav,.csv{display:none}@page{margin:15mm}}
`;

const TITLES: Record<ReviewTable, string> = {
  pareto: "Fault families (Pareto)",
  promises: "Service promises",
  issues: "Issues opened, closed and verified effective",
  overdue: "Overdue actions",
  firmware: "Firmware verdicts",
  feedback: "Customer feedback beside fault rates",
};

const pct = (share: number | null) => (share === null ? "—" : `${(share * 100).toFixed(1)}%`);
const num = (value: number | null, digits = 2) => (value === null ? "—" : value.toFixed(digits));
const int = (value: number) => value.toLocaleString("en-US");

function Section(props: {
  table: ReviewTable;
  sample: string;
  csvHref?: ((table: ReviewTable) => string) | undefined;
  children: Child;
}) {
  return (
    <section id={props.table} aria-labelledby={`${props.table}-title`}>
      <h2 id={`${props.table}-title`}>{TITLES[props.table]}</h2>
      <p class="sample">{props.sample}</p>
      {props.children}
      {props.csvHref ? (
        <p class="csv">
          <a href={props.csvHref(props.table)}>This table as CSV</a>
        </p>
      ) : null}
    </section>
  );
}

const Empty = (props: { text: string }) => <p class="empty">{props.text}</p>;

function Table(props: { head: string[]; numeric?: number[]; rows: (string | number)[][] }) {
  const numeric = new Set(props.numeric ?? []);
  return (
    <table>
      <thead>
        <tr>
          {props.head.map((h) => (
            <th scope="col">{h}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {props.rows.map((row) => (
          <tr>
            {row.map((cell, i) => (
              <td class={numeric.has(i) ? "n" : undefined}>{cell}</td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export type ReviewHtmlOptions = {
  /** Where each table's CSV is (the API's or the dashboard's URL); without it, no links. */
  csvHref?: (table: ReviewTable) => string;
};

export function ReviewDocument(props: { report: ReviewReport } & ReviewHtmlOptions) {
  const r = props.report;
  const window = `${r.from} to ${r.to} (UTC, end exclusive)`;
  const csv = props.csvHref;
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`fieldq management review, ${r.from.slice(0, 10)} to ${r.to.slice(0, 10)}`}</title>
        {/* A constant: nothing of the report's data goes into it. */}
        <style dangerouslySetInnerHTML={{ __html: STYLE }} />
      </head>
      <body>
        <header>
          <h1>Management review</h1>
          <p class="meta">
            Window {window}. Generated {r.generatedAt}. ISO 9001 §9.3: fault families, promises, actions,
            firmware and customer feedback, each with its window and sample size.
          </p>
          <nav aria-label="Sections">
            <ul>
              {REVIEW_TABLES.map((t) => (
                <li>
                  <a href={`#${t}`}>{TITLES[t]}</a>
                </li>
              ))}
            </ul>
          </nav>
        </header>

        <Section
          table="pareto"
          csvHref={csv}
          sample={`${int(r.pareto.occurrences)} fault occurrences of ${int(r.pareto.issues)} issues in ${window}. Vital few: the issues that give the first 80% of occurrences.`}
        >
          {r.pareto.rows.length === 0 ? (
            <Empty text="No fault occurred in the window." />
          ) : (
            <Table
              head={[
                "#",
                "Issue",
                "Status",
                "Worst severity",
                "Occurrences",
                "Devices",
                "Share",
                "Cumulative",
                "Vital few",
              ]}
              numeric={[0, 4, 5, 6, 7]}
              rows={r.pareto.rows.map((p) => [
                p.rank,
                p.key,
                p.status,
                p.worstSeverity ?? "—",
                int(p.occurrences),
                int(p.affectedDevices),
                pct(p.share),
                pct(p.cumulativeShare),
                p.vitalFew ? "yes" : "no",
              ])}
            />
          )}
        </Section>

        <Section
          table="promises"
          csvHref={csv}
          sample={`Compliance with each model's service promises over ${window}.`}
        >
          {!r.promises.available ? (
            <Empty text={`Not available: ${r.promises.note ?? "no promise service"}.`} />
          ) : r.promises.rows.length === 0 ? (
            <Empty text={r.promises.note ?? "Nothing was promised."} />
          ) : (
            <Table
              head={["Model", "Promise", "Target", "Actual", "Met", "Budget left", "Sample"]}
              numeric={[5]}
              rows={r.promises.rows.map((p) => [
                p.model,
                p.promise,
                p.target,
                p.actual ?? "—",
                p.compliant === null ? "—" : p.compliant ? "met" : "BREACHED",
                pct(p.budgetLeft),
                p.sample,
              ])}
            />
          )}
        </Section>

        <Section
          table="issues"
          csvHref={csv}
          sample={`In ${window}: ${r.issues.opened} opened (first occurrence ever), ${r.issues.closed} closed, ${r.issues.verifiedEffective} verified effective (closed by the field after the fix ran its device-hours), ${r.issues.reopened} reopened or regressed.`}
        >
          {r.issues.rows.length === 0 ? (
            <Empty text="No issue was opened, closed or reopened in the window." />
          ) : (
            <Table
              head={["When", "Event", "Issue", "By", "Detail"]}
              rows={r.issues.rows.map((e) => [
                e.at,
                e.event.replace("_", " "),
                e.key,
                e.actor,
                e.detail ?? "",
              ])}
            />
          )}
        </Section>

        <Section
          table="overdue"
          csvHref={csv}
          sample={`${r.overdue.rows.length} of ${r.overdue.openActions} open actions (issues acknowledged, investigating or regressed, or new and assigned, as of ${r.overdue.asOf}) without progress for more than ${r.overdue.limitDays} days.`}
        >
          {r.overdue.rows.length === 0 ? (
            <Empty text="No action is overdue." />
          ) : (
            <Table
              head={["Issue", "Status", "Assignee", "Last progress", "Days without progress"]}
              numeric={[4]}
              rows={r.overdue.rows.map((o) => [
                o.key,
                o.status,
                o.assignee ?? "nobody",
                o.since,
                num(o.daysWithoutProgress, 1),
              ])}
            />
          )}
        </Section>

        <Section table="firmware" csvHref={csv} sample={`${r.firmware.note}.`}>
          {r.firmware.rows.length === 0 ? (
            <Empty text="No regression or improvement holds." />
          ) : (
            <Table
              head={[
                "Model",
                "Subject",
                "Verdict",
                "First reached",
                "Evidence window",
                "Rate ratio (95% CI)",
                "Faults / 1,000 h (candidate vs baseline)",
                "Devices (candidate / baseline)",
                "Device-hours (candidate / baseline)",
              ]}
              rows={r.firmware.rows.map((f) => [
                f.model ?? `every ${f.kind}`,
                f.subject,
                f.verdict,
                f.firstReached,
                `${f.evidenceFrom} to ${f.evidenceTo}`,
                `${num(f.rateRatio)} (${num(f.ciLower)}–${f.ciUpper === null ? "∞" : num(f.ciUpper)})`,
                `${num(f.candidatePer1000h)} vs ${num(f.baselinePer1000h)}`,
                `${int(f.candidateDevices)} / ${int(f.baselineDevices)}`,
                `${int(Math.round(f.candidateHours))} / ${int(Math.round(f.baselineHours))}`,
              ])}
            />
          )}
        </Section>

        <Section
          table="feedback"
          csvHref={csv}
          sample={`${int(r.feedback.records)} support-desk records in ${window}, per model and firmware beside the cohort's active devices, device-hours, faults per 1,000 device-hours and the ratings its devices reported (0-10). Support-desk ratings are 1-5; each mean gives its number of ratings.`}
        >
          {r.feedback.groups.length === 0 ? (
            <Empty text="No cohort reported and no feedback was recorded in the window." />
          ) : (
            <Table
              head={[
                "Model",
                "Firmware",
                "Feedback",
                ...FEEDBACK_CATEGORIES,
                "Desk rating (n)",
                "Devices",
                "Device-hours",
                "Faults / 1,000 h",
                "Device rating (n)",
              ]}
              numeric={[2, 3, 4, 5, 6, 7, 9, 10, 11]}
              rows={r.feedback.groups.map((g) => [
                g.model,
                g.firmware,
                int(g.feedback.total),
                ...FEEDBACK_CATEGORIES.map((c) => int(g.feedback.byCategory[c])),
                `${num(g.feedback.meanRating)} (${g.feedback.ratings})`,
                int(g.devices),
                int(g.exposureHours),
                num(g.faultsPer1000h),
                `${num(g.deviceRatings.mean)} (${g.deviceRatings.count})`,
              ])}
            />
          )}
          {r.feedback.latest.length === 0 ? null : (
            <>
              <h3>In the customers' words (newest {r.feedback.latest.length})</h3>
              <Table
                head={["When", "Device", "Model / firmware", "Category", "Rating", "What was said"]}
                rows={r.feedback.latest.map((f) => [
                  f.at,
                  f.device,
                  `${f.model} / ${f.firmware}`,
                  f.category,
                  f.rating === null ? "—" : `${f.rating}/5`,
                  f.text,
                ])}
              />
            </>
          )}
        </Section>
      </body>
    </html>
  );
}

/** The printable document as a string. */
export function reviewHtml(report: ReviewReport, options: ReviewHtmlOptions = {}): string {
  return `<!doctype html>${String(<ReviewDocument report={report} {...options} />)}`;
}
