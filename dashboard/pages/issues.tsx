import type { Context } from "hono";
import { ISSUE_SORTS, type IssueListItem, type IssueSort, UNASSIGNED } from "../../contract/api/issues.js";
import { ISSUE_STATUSES, type IssueStatus } from "../../contract/issue-events.js";
import { SEVERITIES, type Severity as SeverityName } from "../../contract/messages.js";
import { DAY_MS, HOUR_MS } from "../../contract/time.js";
import { ChartSpecScript, Panel, Severity, Status, TableWrap, When } from "../components.js";
import { count, percent } from "../format.js";
import { render } from "../layout.js";
import { load } from "../load.js";
import type { PageHandler } from "../page.js";
import type { DashboardEnv } from "../session.js";

// GET /issues: the issues of a window, worst first (the API's sort), filtered by what the API filters on. The
// filters are the URL's query, so a pasted link opens the same list.

const PAGE_SIZE = 25;
/** The windows the issue list and an issue's page offer (?days=). */
export const WINDOWS = [
  { days: 1, label: "Last 24 hours" },
  { days: 7, label: "Last 7 days" },
  { days: 30, label: "Last 30 days" },
] as const;
export const DEFAULT_DAYS = 7;

const SORT_LABELS: Record<IssueSort, string> = {
  devices: "Impact: affected devices",
  occurrences: "Occurrences",
  last_seen: "Last seen",
  growth: "Growth",
};

/** The list's filters as the URL holds them; a value the API would refuse is dropped, not passed on. */
type Filters = {
  days: number;
  status?: IssueStatus;
  severity?: SeverityName;
  model?: string;
  kind?: string;
  firmware?: string;
  assignee?: string;
  sort: IssueSort;
  offset: number;
};

const oneOf = <T extends string>(values: readonly T[], value: string | undefined): T | undefined =>
  values.find((v) => v === value);
const text = (value: string | undefined) => {
  const trimmed = value?.trim() ?? "";
  return trimmed === "" || trimmed.length > 128 ? undefined : trimmed;
};

function filtersOf(c: Context<DashboardEnv>): Filters {
  const q = (name: string) => c.req.query(name);
  const days = Number(q("days"));
  const offset = Number(q("offset"));
  const filters: Filters = {
    days: WINDOWS.some((w) => w.days === days) ? days : DEFAULT_DAYS,
    sort: oneOf(ISSUE_SORTS, q("sort")) ?? "devices",
    offset: Number.isInteger(offset) && offset > 0 ? offset : 0,
  };
  const status = oneOf(ISSUE_STATUSES, q("status"));
  const severity = oneOf(SEVERITIES, q("severity"));
  const model = text(q("model"));
  const kind = text(q("kind"));
  const firmware = text(q("firmware"));
  const assignee = text(q("assignee"));
  if (status !== undefined) filters.status = status;
  if (severity !== undefined) filters.severity = severity;
  if (model !== undefined) filters.model = model;
  if (kind !== undefined) filters.kind = kind;
  if (firmware !== undefined) filters.firmware = firmware;
  if (assignee !== undefined) filters.assignee = assignee;
  return filters;
}

/** This list's URL with some filters changed (paging keeps the rest). */
function hrefOf(filters: Filters, change: Partial<Filters>): string {
  const next = { ...filters, ...change };
  const params = new URLSearchParams();
  if (next.days !== DEFAULT_DAYS) params.set("days", String(next.days));
  for (const key of ["status", "severity", "model", "kind", "firmware", "assignee"] as const) {
    const value = next[key];
    if (value !== undefined) params.set(key, value);
  }
  if (next.sort !== "devices") params.set("sort", next.sort);
  if (next.offset > 0) params.set("offset", String(next.offset));
  const query = params.toString();
  return query === "" ? "/issues" : `/issues?${query}`;
}

export const issuesPage: PageHandler = async (c, deps) => {
  const session = c.get("session");
  const filters = filtersOf(c);
  const toMs = deps.now();
  const { offset, days, sort, ...chosen } = filters;
  const { assignee, ...rest } = chosen;
  const [issues, fleet] = await Promise.all([
    load(
      session.api.api.v1.issues.$get({
        query: {
          ...rest,
          ...(assignee === undefined ? {} : { assignedTo: assignee }),
          withTrend: "true",
          from: new Date(toMs - days * DAY_MS).toISOString(),
          to: new Date(toMs).toISOString(),
          sort,
          limit: String(PAGE_SIZE),
          offset: String(offset),
        },
      }),
    ),
    // The models to choose from: the fleet's, whatever the issue filters hold.
    load(session.api.api.v1.fleet.summary.$get({ query: {} })),
  ]);
  const models = fleet.ok ? fleet.data.groups.map((g) => g.group.model).filter((m) => m !== undefined) : [];

  return render(c, deps.assets, {
    title: "Issues",
    section: "issues",
    children: (
      <>
        <FilterForm filters={filters} models={models} />
        <Panel
          title="Issues by impact"
          live="issues"
          wide
          loaded={issues}
          isEmpty={(page) => page.items.length === 0}
          empty={
            Object.keys(chosen).length > 0
              ? "No issue matches these filters in this window. Widen the window or clear a filter."
              : "No issue had an occurrence in this window."
          }
          extra={issues.ok ? <p class="help">{count(issues.data.total)} issues</p> : undefined}
          render={(page) => (
            <>
              <IssueTable items={page.items} fromMs={Math.floor(Date.parse(page.from) / HOUR_MS) * HOUR_MS} />
              <Pager
                filters={filters}
                total={page.total}
                shown={page.items.length}
                nextOffset={page.nextOffset}
              />
            </>
          )}
        />
      </>
    ),
  });
};

function FilterForm(props: { filters: Filters; models: string[] }) {
  const f = props.filters;
  const models =
    f.model !== undefined && !props.models.includes(f.model) ? [f.model, ...props.models] : props.models;
  return (
    <search>
      <form class="filters issue-filters" method="get" action="/issues">
        <label>
          Window
          <select name="days">
            {WINDOWS.map((w) => (
              <option value={String(w.days)} selected={w.days === f.days}>
                {w.label}
              </option>
            ))}
          </select>
        </label>
        <label>
          Status
          <select name="status">
            <option value="">Any status</option>
            {ISSUE_STATUSES.map((s) => (
              <option value={s} selected={s === f.status}>
                {s.replace(/_/g, " ")}
              </option>
            ))}
          </select>
        </label>
        <label>
          Severity at least
          <select name="severity">
            <option value="">Any severity</option>
            {SEVERITIES.map((s) => (
              <option value={s} selected={s === f.severity}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Model
          <select name="model">
            <option value="">Any model</option>
            {models.map((m) => (
              <option value={m} selected={m === f.model}>
                {m}
              </option>
            ))}
          </select>
        </label>
        <label>
          Firmware
          <input name="firmware" type="text" value={f.firmware ?? ""} placeholder="e.g. 7.61" size={8} />
        </label>
        <label>
          Assignee
          <input
            name="assignee"
            type="text"
            value={f.assignee ?? ""}
            placeholder={`name, or ${UNASSIGNED}`}
            size={12}
          />
        </label>
        <label>
          Sort by
          <select name="sort">
            {ISSUE_SORTS.map((s) => (
              <option value={s} selected={s === f.sort}>
                {SORT_LABELS[s]}
              </option>
            ))}
          </select>
        </label>
        {f.kind === undefined ? null : <input type="hidden" name="kind" value={f.kind} />}
        <button type="submit">Apply</button>
        <a href="/issues">Clear filters</a>
      </form>
    </search>
  );
}

function IssueTable(props: { items: IssueListItem[]; fromMs: number }) {
  return (
    <TableWrap label="Issues">
      <table class="issues-table">
        <thead>
          <tr>
            <th scope="col">Issue</th>
            <th scope="col">Status</th>
            <th scope="col">Severity</th>
            <th scope="col">Models</th>
            <th scope="col" class="num">
              Devices
            </th>
            <th scope="col" class="num">
              Occurrences
            </th>
            <th scope="col">Trend</th>
            <th scope="col">First seen</th>
            <th scope="col">Last seen</th>
            <th scope="col">Assignee</th>
          </tr>
        </thead>
        <tbody>
          {props.items.map((issue) => (
            <tr>
              <th scope="row" class="issue-key">
                <a href={`/issues/${encodeURIComponent(issue.id)}`}>
                  <KeyText text={issue.key} />
                </a>
                {issue.mergedIds.length > 0 ? (
                  <span class="help"> +{issue.mergedIds.length} merged</span>
                ) : null}
              </th>
              <td>
                <Status status={issue.status} />
                {issue.fixVersion === null ? null : <span class="help"> fix {issue.fixVersion}</span>}
              </td>
              <td>{issue.worstSeverity === null ? "–" : <Severity severity={issue.worstSeverity} />}</td>
              <td>{issue.models.map((m) => m.split("/").slice(1).join("/") || m).join(", ")}</td>
              <td class="num">
                {count(issue.affectedDevices)}
                {issue.fleetShare === null ? null : <span class="help"> {percent(issue.fleetShare)}</span>}
              </td>
              <td class="num">{count(issue.occurrences)}</td>
              <td>
                <Spark issue={issue} fromMs={props.fromMs} />
              </td>
              <td>
                <When iso={issue.firstSeen} format="date" />
              </td>
              <td>
                <When iso={issue.lastSeen} />
              </td>
              <td>{issue.assignee ?? <span class="help">nobody</span>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableWrap>
  );
}

/** An issue's key, breakable after each slash ("modem/FQ-Modem 7590/WIFI_RADIO_CRASH"). */
export const KeyText = (props: { text: string }) => (
  <>
    {props.text.split("/").map((part, i) => (
      <>
        {i > 0 ? (
          <>
            /<wbr />
          </>
        ) : null}
        {part}
      </>
    ))}
  </>
);

/** A sparkline in a table cell: the chart element of components.tsx Chart without the caption, and its words. */
function Spark(props: { issue: IssueListItem; fromMs: number }) {
  const { trend } = props.issue;
  if (trend === undefined) return <span>–</span>;
  const spec = {
    kind: "spark" as const,
    x: trend.occurrences.map((_, i) => props.fromMs + i * trend.bucketMs),
    values: trend.occurrences,
  };
  const unit = trend.bucketMs >= DAY_MS ? "day" : "hour";
  const peak = Math.max(0, ...trend.occurrences);
  const last = trend.occurrences.at(-1) ?? 0;
  return (
    <div class="spark">
      <div class="chart-canvas" data-chart style="min-height:28px" aria-hidden="true" />
      <ChartSpecScript spec={spec} />
      <span class="visually-hidden">
        {`Occurrences per ${unit}: peak ${count(peak)}, latest ${count(last)}`}
      </span>
    </div>
  );
}

function Pager(props: { filters: Filters; total: number; shown: number; nextOffset: number | null }) {
  const { offset } = props.filters;
  if (offset === 0 && props.nextOffset === null) return null;
  return (
    <nav class="pager" aria-label="Pages of issues">
      {offset > 0 ? (
        <a href={hrefOf(props.filters, { offset: Math.max(0, offset - PAGE_SIZE) })} rel="prev">
          Previous
        </a>
      ) : null}
      <span>
        {count(offset + 1)}–{count(offset + props.shown)} of {count(props.total)}
      </span>
      {props.nextOffset === null ? null : (
        <a href={hrefOf(props.filters, { offset: props.nextOffset })} rel="next">
          Next
        </a>
      )}
    </nav>
  );
}
