import {
  REVIEW_FORMATS,
  REVIEW_TABLES,
  type ReviewReport,
  type ReviewTable,
} from "../../contract/api/reports.js";
import { DAY_MS, isoDate } from "../../contract/time.js";
import { Kpis, Panel } from "../components.js";
import { render } from "../layout.js";
import { load } from "../load.js";
import type { PageHandler } from "../page.js";

// The management review: pick a window (whole UTC days, the last 30 by default), see its headline figures,
// open the printable report or a table's CSV. The report itself is the API's, fetched for the signed-in user.

const DEFAULT_DAYS = 30;
const DAY_PATTERN = /^\d{4}-\d{2}-\d{2}$/;

const TABLE_LABELS: Record<ReviewTable, string> = {
  pareto: "Fault families (Pareto)",
  promises: "Service promises",
  issues: "Issues opened, closed, verified",
  overdue: "Overdue actions",
  firmware: "Firmware verdicts",
  feedback: "Feedback beside fault rates",
};

/** The window the picker holds: from's midnight to the midnight after `to` (both UTC days, inclusive). */
function windowOf(from: string | undefined, to: string | undefined, nowMs: number) {
  const lastDay = to !== undefined && DAY_PATTERN.test(to) ? to : isoDate(nowMs);
  const toMs = Date.parse(`${lastDay}T00:00:00Z`) + DAY_MS;
  const fromDay = from !== undefined && DAY_PATTERN.test(from) ? from : isoDate(toMs - DEFAULT_DAYS * DAY_MS);
  const fromMs = Date.parse(`${fromDay}T00:00:00Z`);
  const valid = Number.isFinite(fromMs) && Number.isFinite(toMs) && fromMs < toMs;
  return valid
    ? { fromDay, lastDay, from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString() }
    : undefined;
}

export const reviewPage: PageHandler = async (c, deps) => {
  const session = c.get("session");
  const picked = windowOf(c.req.query("from"), c.req.query("to"), deps.now());
  const window = picked ?? windowOf(undefined, undefined, deps.now());
  if (window === undefined) return c.text("no window", 500);
  const report = await load(
    session.api.api.v1.reports.review.$get({
      query: { from: window.from, to: window.to, format: "json" },
    }),
  );
  const link = (extra: Record<string, string> = {}) =>
    `/review/report?${new URLSearchParams({ from: window.from, to: window.to, ...extra })}`;
  return render(c, deps.assets, {
    title: "Management review",
    section: "review",
    liveEverySeconds: 0,
    children: (
      <div class="panels review-page">
        <section class="panel wide" aria-labelledby="review-window">
          <header class="panel-head">
            <h2 id="review-window">Window</h2>
          </header>
          <form class="filters review-window" method="get" action="/review">
            <label for="review-from">First day</label>
            <input id="review-from" name="from" type="date" value={window.fromDay} required />
            <label for="review-to">Last day</label>
            <input id="review-to" name="to" type="date" value={window.lastDay} required />
            <button type="submit">Show</button>
          </form>
          {picked === undefined ? (
            <p class="error" role="alert">
              The first day must come before the last; showing the last {DEFAULT_DAYS} days.
            </p>
          ) : null}
          <p class="note">
            Whole UTC days, {window.fromDay} to {window.lastDay} inclusive. The report is one printable
            document (print it, or save it as PDF from the browser); each table is also a CSV file.
          </p>
          <p class="review-open">
            <a class="button" href={link()} target="_blank" rel="noopener">
              Open the printable report
            </a>
          </p>
          <nav aria-label="Tables as CSV">
            <ul class="review-csv">
              {REVIEW_TABLES.map((table) => (
                <li>
                  <a href={link({ format: "csv", table })} download>
                    {`${TABLE_LABELS[table]} (CSV)`}
                  </a>
                </li>
              ))}
            </ul>
          </nav>
        </section>
        <Panel
          title="Headline figures"
          wide
          loaded={report}
          empty=""
          render={(r) => <Headlines report={r as ReviewReport} />}
        />
      </div>
    ),
  });
};

function Headlines(props: { report: ReviewReport }) {
  const r = props.report;
  const vital = r.pareto.rows.filter((p) => p.vitalFew).length;
  return (
    <Kpis
      items={[
        {
          label: "Fault occurrences",
          value: r.pareto.occurrences.toLocaleString("en-US"),
          note: `${r.pareto.issues} issues; ${vital} give 80%`,
        },
        {
          label: "Issues opened / closed",
          value: `${r.issues.opened} / ${r.issues.closed}`,
          note: `${r.issues.verifiedEffective} verified effective, ${r.issues.reopened} reopened`,
        },
        {
          label: "Overdue actions",
          value: String(r.overdue.rows.length),
          note: `of ${r.overdue.openActions} open, no progress for ${r.overdue.limitDays}+ days`,
        },
        {
          label: "Firmware verdicts",
          value: String(r.firmware.rows.length),
          note: `${r.firmware.rows.filter((f) => f.verdict === "regression").length} regressions`,
        },
        {
          label: "Customer feedback",
          value: String(r.feedback.records),
          note: "records by the support desk",
        },
      ]}
    />
  );
}

const FORWARDED = ["content-type", "content-disposition", "content-security-policy"] as const;

/** GET /review/report?from&to[&format&table]: the API's printable report (or a table's CSV), for the signed-in user. */
export const reviewReport: PageHandler = async (c) => {
  const from = c.req.query("from");
  const to = c.req.query("to");
  const format = REVIEW_FORMATS.find((f) => f === c.req.query("format"));
  const table = REVIEW_TABLES.find((t) => t === c.req.query("table"));
  const response = await c.get("session").api.api.v1.reports.review.$get({
    query: {
      ...(from === undefined ? {} : { from }),
      ...(to === undefined ? {} : { to }),
      ...(format === undefined ? {} : { format }),
      ...(table === undefined ? {} : { table }),
    },
  });
  const headers = new Headers({ "cache-control": "no-store" });
  for (const name of FORWARDED) {
    const value = response.headers.get(name);
    if (value !== null) headers.set(name, value);
  }
  return new Response(await response.arrayBuffer(), { status: response.status, headers });
};
