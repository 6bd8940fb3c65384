import type { Context } from "hono";
import { needsReason, TRANSITIONS } from "../../analytics/lifecycle.js";
import type { BreakdownName, IssueDetail, IssueHistoryEntry } from "../../contract/api/issues.js";
import { type IssueStatus, TransitionTarget } from "../../contract/issue-events.js";
import { DAY_MS } from "../../contract/time.js";
import type { ChartEmbed, MarkerSpec } from "../chart-spec.js";
import { Chart, ErrorState, Kpis, Panel, Severity, Status, TableWrap, When } from "../components.js";
import { count, percent } from "../format.js";
import { flash, render } from "../layout.js";
import { type Loaded, load } from "../load.js";
import type { PageDeps, PageHandler } from "../page.js";
import type { DashboardEnv } from "../session.js";
import { DEFAULT_DAYS, WINDOWS } from "./issues.js";

// GET /issues/:id: one issue's trend, breakdowns, affected devices, how concentrated it is and its history;
// for an operator, the lifecycle's forms. POST /issues/:id/:action takes those forms (plain HTML, no script),
// calls the API in-process and redirects back; a refusal shows the page again with the reason by the form.

const DEVICES_PAGE = 25;

const ACTIONS = ["transition", "assign", "note"] as const;
type Action = (typeof ACTIONS)[number];

/** What a refused form said and why, to show it again with the person's text kept. */
type FormState = { action: Action; error: string; values: Record<string, string> };

const buttonLabel = (from: IssueStatus, to: TransitionTarget): string => {
  if (from === "closed" && to === "acknowledged") return "Reopen";
  const labels: Record<TransitionTarget, string> = {
    acknowledged: "Acknowledge",
    investigating: "Investigate",
    fix_released: "Fix released",
    verifying: "Verify",
    closed: "Close",
    muted: "Mute",
  };
  return labels[to];
};

type View = { days: number; devicesOffset: number };

function viewOf(c: Context<DashboardEnv>): View {
  const days = Number(c.req.query("days"));
  const offset = Number(c.req.query("devices"));
  return {
    days: WINDOWS.some((w) => w.days === days) ? days : DEFAULT_DAYS,
    devicesOffset: Number.isInteger(offset) && offset > 0 ? offset : 0,
  };
}

function hrefOf(id: string, view: View): string {
  const params = new URLSearchParams();
  if (view.days !== DEFAULT_DAYS) params.set("days", String(view.days));
  if (view.devicesOffset > 0) params.set("devices", String(view.devicesOffset));
  const query = params.toString();
  return `/issues/${encodeURIComponent(id)}${query === "" ? "" : `?${query}`}`;
}

async function loadIssue(c: Context<DashboardEnv>, deps: PageDeps, id: string, view: View) {
  const toMs = deps.now();
  return load(
    c.get("session").api.api.v1.issues[":id"].$get({
      param: { id },
      query: {
        from: new Date(toMs - view.days * DAY_MS).toISOString(),
        to: new Date(toMs).toISOString(),
        devicesLimit: String(DEVICES_PAGE),
        devicesOffset: String(view.devicesOffset),
      },
    }),
  );
}

export const issuePage: PageHandler = async (c, deps) => {
  const id = c.req.param("id") ?? "";
  return showIssue(c, deps, id, viewOf(c), undefined);
};

async function showIssue(
  c: Context<DashboardEnv>,
  deps: PageDeps,
  id: string,
  view: View,
  form: FormState | undefined,
) {
  const issue = await loadIssue(c, deps, id, view);
  const session = c.get("session");
  if (!issue.ok) {
    return render(
      c,
      deps.assets,
      {
        title: issue.status === 404 ? "No such issue" : "Issue",
        section: "issues",
        children: (
          <>
            <Panel title="Issue" loaded={issue} empty="" render={() => null} />
            <p>
              <a href="/issues">Back to the issues</a>
            </p>
          </>
        ),
      },
      issue.status === 404 ? 404 : 503,
    );
  }
  const detail = issue.data;
  const loaded: Loaded<IssueDetail> = issue;
  return render(
    c,
    deps.assets,
    {
      title: detail.key,
      section: "issues",
      // A refused form's page sits at the form's URL: no live refresh there.
      liveEverySeconds: form === undefined ? 10 : 0,
      actions: <WindowForm id={id} view={view} />,
      children: (
        <div class="issue-page">
          {detail.id !== id ? (
            <p class="help">Issue {id} was merged into this one; its occurrences count here.</p>
          ) : null}
          <Panel
            title="Summary"
            live="summary"
            wide
            loaded={loaded}
            empty=""
            render={(d) => <Summary issue={d} />}
          />
          {session.canAct ? <Actions issue={detail} form={form} /> : null}
          <div class="panels">
            <Panel
              title="Trend"
              live="trend"
              wide
              loaded={loaded}
              isEmpty={(d) => d.trend.buckets.length === 0}
              empty="No time in this window."
              render={(d) => <Chart chart={trendChart(d)} />}
            />
            <Panel
              title="Breakdowns"
              live="breakdowns"
              wide
              loaded={loaded}
              isEmpty={(d) => d.occurrences === 0}
              empty="No occurrence in this window to break down."
              render={(d) => <Breakdowns issue={d} />}
            />
            <Panel
              title="How concentrated"
              live="concentration"
              loaded={loaded}
              isEmpty={(d) => d.concentration.devices === 0}
              empty="No device had an occurrence in this window."
              render={(d) => <Concentration issue={d} />}
            />
            <Panel
              title="Affected devices"
              live="devices"
              loaded={loaded}
              isEmpty={(d) => d.devices.total === 0}
              empty="No device had an occurrence in this window."
              render={(d) => <Devices issue={d} view={view} requested={id} />}
            />
            <Panel
              title="History"
              live="history"
              wide
              loaded={loaded}
              isEmpty={(d) => d.history.length === 0}
              empty="Nothing recorded yet."
              render={(d) => <History entries={d.history} />}
            />
          </div>
        </div>
      ),
    },
    // A refused form is shown again with its reason (role alert) as a page, not as an HTTP error: the browser
    // would log a 4xx document as a console error.
    200,
  );
}

function WindowForm(props: { id: string; view: View }) {
  return (
    <form class="filters issue-window" method="get" action={`/issues/${encodeURIComponent(props.id)}`}>
      <label>
        Window
        <select name="days">
          {WINDOWS.map((w) => (
            <option value={String(w.days)} selected={w.days === props.view.days}>
              {w.label}
            </option>
          ))}
        </select>
      </label>
      <button type="submit">Show</button>
    </form>
  );
}

function Summary(props: { issue: IssueDetail }) {
  const d = props.issue;
  return (
    <>
      <Kpis
        items={[
          {
            label: "Status",
            value: <Status status={d.status} />,
            note:
              d.statusSince === null ? undefined : (
                <>
                  since <When iso={d.statusSince} />
                  {d.closure === null ? null : ` (${d.closure.replace(/_/g, " ")})`}
                </>
              ),
          },
          {
            label: "Worst severity",
            value: d.worstSeverity === null ? "–" : <Severity severity={d.worstSeverity} />,
            note: d.codes.join(", "),
          },
          {
            label: "Affected devices",
            value: count(d.affectedDevices),
            note: `${percent(d.fleetShare)} of ${count(d.activeDevices)} active`,
          },
          {
            label: "Occurrences",
            value: count(d.occurrences),
            note: `${d.growth.delta >= 0 ? "+" : ""}${count(d.growth.delta)} second half vs first`,
          },
          {
            label: "Impact",
            value: d.impact.score.toFixed(1),
            note: `severity ${d.impact.severityWeight} × ${count(d.impact.affectedDevices)} devices × ${percent(d.impact.fleetShare)} of the fleet × age ${d.impact.ageFactor.toFixed(2)}`,
          },
          {
            label: "Escalation",
            value:
              d.escalation === null
                ? "not escalated"
                : `level ${d.escalation.level}: ${d.escalation.levelName}`,
            note: d.escalation === null ? undefined : <EscalationNote escalation={d.escalation} />,
          },
          { label: "Assignee", value: d.assignee ?? "nobody" },
          {
            label: "Fix",
            value: d.fixVersion ?? "none",
            note: d.regressions > 0 ? `${count(d.regressions)} regression(s)` : "no regression",
          },
        ]}
      />
      <p class="help">
        Models: {d.models.join(", ")}. First seen <When iso={d.firstSeen} />, last seen{" "}
        <When iso={d.lastSeen} />.
        {d.mergedIds.length > 0 ? ` Merged into it: ${d.mergedIds.join(", ")}.` : ""}
      </p>
    </>
  );
}

function EscalationNote(props: { escalation: NonNullable<IssueDetail["escalation"]> }) {
  const e = props.escalation;
  const state =
    e.acknowledged !== null
      ? `acknowledged by ${e.acknowledged.by}`
      : e.status === null
        ? "alert state unknown"
        : e.status === "open"
          ? "not acknowledged"
          : e.status;
  return (
    <>
      since <When iso={e.since} />, {state} (
      <a href={`/alerts#${encodeURIComponent(e.alertId)}`}>alert {e.alertId}</a>)
    </>
  );
}

const MARKED: ReadonlySet<string> = new Set(["transition", "regression", "auto_close", "merge"]);

function trendChart(d: IssueDetail): ChartEmbed {
  const x = d.trend.buckets.map((b) => Date.parse(b.time));
  const fromMs = Date.parse(d.from);
  const toMs = Date.parse(d.to);
  const markers: MarkerSpec[] = d.history
    .filter((h) => MARKED.has(h.event.type) && h.event.at >= fromMs && h.event.at < toMs)
    .map((h) => ({
      atMs: h.event.at,
      label: eventTitle(h),
      tone: h.event.type === "regression" ? "critical" : "event",
    }));
  const unit = d.trend.bucketMs >= DAY_MS ? "day" : "hour";
  const peak = d.trend.buckets.reduce((best, b) => (b.occurrences > best.occurrences ? b : best), {
    time: d.from,
    occurrences: 0,
    affectedDevices: 0,
  });
  return {
    title: `Occurrences and affected devices per ${unit}`,
    summary:
      peak.occurrences === 0
        ? "No occurrence in this window."
        : `${count(d.occurrences)} occurrences on ${count(d.affectedDevices)} devices; the most in one ${unit}: ${count(peak.occurrences)} at ${peak.time.slice(0, 16).replace("T", " ")} UTC.${markers.length > 0 ? ` ${markers.length} lifecycle events marked.` : ""}`,
    spec: {
      kind: "series",
      x,
      series: [
        { label: "Occurrences", values: d.trend.buckets.map((b) => b.occurrences) },
        { label: "Affected devices", values: d.trend.buckets.map((b) => b.affectedDevices), axis: "right" },
      ],
      markers,
    },
    height: 220,
  };
}

type Row = { value: string; occurrences: number; affectedDevices: number };

/** A breakdown's rows, whose value sits under the breakdown's own name (contract/api/issues.ts Breakdown). */
const rowsOf = (rows: ReadonlyArray<Record<string, unknown>>, name: BreakdownName): Row[] =>
  rows.map((r) => ({
    value: String(r[name] ?? "unknown"),
    occurrences: Number(r.occurrences ?? 0),
    affectedDevices: Number(r.affectedDevices ?? 0),
  }));

function Breakdowns(props: { issue: IssueDetail }) {
  const d = props.issue;
  const tables: Array<{ title: string; column: string; rows: Row[]; note?: string }> = [
    { title: "By firmware", column: "Firmware", rows: rowsOf(d.byFirmware, "firmware") },
    { title: "By region", column: "Region", rows: rowsOf(d.byRegion, "region") },
    {
      title: "By ISP",
      column: "ISP",
      rows: rowsOf(d.byIsp, "isp"),
      note: "each device's current ISP",
    },
    {
      title: "By hardware",
      column: "Hardware",
      rows: rowsOf(d.byHardware, "hardware"),
      note: "each device's current revision",
    },
  ];
  return (
    <div class="breakdowns">
      {tables.map((t) => (
        <div class="breakdown">
          <h3>{t.title}</h3>
          {t.note === undefined ? null : <p class="help">By {t.note}.</p>}
          <TableWrap label={`Occurrences ${t.title.toLowerCase()}`}>
            <table>
              <thead>
                <tr>
                  <th scope="col">{t.column}</th>
                  <th scope="col" class="num">
                    Devices
                  </th>
                  <th scope="col" class="num">
                    Occurrences
                  </th>
                  <th scope="col">Share</th>
                </tr>
              </thead>
              <tbody>
                {t.rows.map((r) => {
                  const share = d.occurrences > 0 ? r.occurrences / d.occurrences : 0;
                  return (
                    <tr>
                      <th scope="row">{r.value}</th>
                      <td class="num">{count(r.affectedDevices)}</td>
                      <td class="num">{count(r.occurrences)}</td>
                      <td class="share">
                        <span
                          class="bar"
                          style={`width:${Math.max(1, Math.round(share * 70))}px`}
                          aria-hidden="true"
                        />
                        <span>{percent(share)}</span>
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </TableWrap>
        </div>
      ))}
    </div>
  );
}

function Concentration(props: { issue: IssueDetail }) {
  const c = props.issue.concentration;
  const top = c.topDevice;
  return (
    <>
      <ul class="concentration">
        {c.top.map((t) => (
          <li>
            <strong>{count(t.devices)}</strong> of {count(c.devices)} devices give {percent(t.share)} of the{" "}
            {count(c.occurrences)} occurrences ({percent(c.devices > 0 ? t.devices / c.devices : 0)} of the
            devices).
          </li>
        ))}
        {top === null ? null : (
          <li>
            The most: <a href={`/devices/${encodeURIComponent(top.id)}`}>{top.id}</a> with{" "}
            {count(top.occurrences)} ({percent(top.share)}).
          </li>
        )}
      </ul>
      <p class="help">
        Few devices giving most occurrences points at bad units; many at a fleet problem (firmware, network).
      </p>
    </>
  );
}

function Devices(props: { issue: IssueDetail; view: View; requested: string }) {
  const { devices } = props.issue;
  const { view } = props;
  return (
    <>
      <TableWrap label="Affected devices">
        <table>
          <thead>
            <tr>
              <th scope="col">Device</th>
              <th scope="col" class="num">
                Occurrences
              </th>
              <th scope="col">Firmware</th>
              <th scope="col">Last seen</th>
            </tr>
          </thead>
          <tbody>
            {devices.items.map((dev) => (
              <tr>
                <th scope="row">
                  <a href={`/devices/${encodeURIComponent(dev.id)}`}>{dev.id}</a>
                </th>
                <td class="num">{count(dev.occurrences)}</td>
                <td>{dev.firmware}</td>
                <td>
                  <When iso={dev.lastSeen} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </TableWrap>
      <nav class="pager" aria-label="Pages of affected devices">
        {devices.offset > 0 ? (
          <a
            href={hrefOf(props.requested, {
              ...view,
              devicesOffset: Math.max(0, devices.offset - DEVICES_PAGE),
            })}
          >
            Previous devices
          </a>
        ) : null}
        <span>
          {count(devices.offset + (devices.items.length > 0 ? 1 : 0))}–
          {count(devices.offset + devices.items.length)} of {count(devices.total)}
        </span>
        {devices.nextOffset === null ? null : (
          <a href={hrefOf(props.requested, { ...view, devicesOffset: devices.nextOffset })}>Next devices</a>
        )}
      </nav>
    </>
  );
}

function eventTitle(entry: IssueHistoryEntry): string {
  const e = entry.event;
  switch (e.type) {
    case "transition":
      return `Moved to ${e.to.replace(/_/g, " ")}${e.fixVersion === undefined ? "" : ` (fixed in ${e.fixVersion})`}`;
    case "assign":
      return e.assignee === null ? "Unassigned" : `Assigned to ${e.assignee}`;
    case "note":
      return "Note";
    case "merge":
      return `Merged into ${e.into}`;
    case "regression":
      return `Regressed on firmware ${e.firmware}`;
    case "auto_close":
      return `Closed: the fix ran ${Math.round(e.exposureHours)} device-hours (${Math.round(e.requiredHours)} required) without a recurrence`;
    case "first_seen":
      return `First seen${e.firmware === undefined ? "" : ` on firmware ${e.firmware}`}`;
    case "escalated":
      return `Escalated to level ${e.level} (${e.levelName}): alert ${e.alertId} unacknowledged`;
  }
}

function eventText(entry: IssueHistoryEntry): string | undefined {
  const e = entry.event;
  if (e.type === "note") return e.text;
  if (e.type === "transition" || e.type === "merge") return e.reason;
  return undefined;
}

/** Newest first: what happened last is what a person opening the issue needs. */
function History(props: { entries: IssueHistoryEntry[] }) {
  const entries = [...props.entries].reverse();
  return (
    <ol class="history">
      {entries.map((entry) => {
        const text = eventText(entry);
        return (
          <li>
            <p class="history-head">
              <When iso={new Date(entry.event.at).toISOString()} />{" "}
              <span class="actor">{entry.event.actor}</span>: <strong>{eventTitle(entry)}</strong>
            </p>
            {text === undefined ? null : <p class="history-text">{text}</p>}
          </li>
        );
      })}
    </ol>
  );
}

/** The lifecycle's forms (operator and above): plain HTML, every field labelled, every action a button. */
function Actions(props: { issue: IssueDetail; form: FormState | undefined }) {
  const d = props.issue;
  const base = `/issues/${encodeURIComponent(d.id)}`;
  const targets = TRANSITIONS[d.status];
  const shown = (action: Action) => (props.form?.action === action ? props.form : undefined);
  const value = (action: Action, name: string) => shown(action)?.values[name] ?? "";
  const reasonNeeded = targets.filter((t) => needsReason(d.status, t)).map((t) => buttonLabel(d.status, t));
  return (
    <section class="panel wide actions" aria-labelledby="issue-actions">
      <header class="panel-head">
        <h2 id="issue-actions">Act on this issue</h2>
      </header>
      <div class="action-forms">
        <form method="post" action={`${base}/transition`} class="stack">
          <FormError form={shown("transition")} />
          <label for="transition-note">Note</label>
          <textarea id="transition-note" name="note" rows={3} maxlength={2000}>
            {value("transition", "note")}
          </textarea>
          {reasonNeeded.length > 0 ? (
            <p class="help">{`${reasonNeeded.join(", ")} need a note saying why.`}</p>
          ) : null}
          {targets.includes("fix_released") ? (
            <>
              <label for="fix-version">Fixed in version (for Fix released)</label>
              <input
                id="fix-version"
                name="fixVersion"
                type="text"
                maxlength={128}
                value={value("transition", "fixVersion") || (d.fixVersion ?? "")}
              />
            </>
          ) : null}
          <div class="buttons">
            {targets.map((to) => (
              <button type="submit" name="to" value={to}>
                {buttonLabel(d.status, to)}
              </button>
            ))}
          </div>
        </form>
        <form method="post" action={`${base}/assign`} class="stack">
          <FormError form={shown("assign")} />
          <label for="assignee">Assignee</label>
          <input
            id="assignee"
            name="assignee"
            type="text"
            maxlength={128}
            value={value("assign", "assignee") || (d.assignee ?? "")}
          />
          <div class="buttons">
            <button type="submit">Assign</button>
            {d.assignee === null ? null : (
              <button type="submit" name="unassign" value="1">
                Unassign
              </button>
            )}
          </div>
        </form>
        <form method="post" action={`${base}/note`} class="stack">
          <FormError form={shown("note")} />
          <label for="note-text">Comment for the history</label>
          <textarea id="note-text" name="text" rows={3} maxlength={10000}>
            {value("note", "text")}
          </textarea>
          <div class="buttons">
            <button type="submit">Add to history</button>
          </div>
        </form>
      </div>
    </section>
  );
}

function FormError(props: { form: FormState | undefined }) {
  return props.form === undefined ? null : <ErrorState message={props.form.error} />;
}

const field = (form: Record<string, unknown>, name: string) => {
  const v = form[name];
  return typeof v === "string" ? v.trim() : "";
};

/** A form's action on an issue (operator): POST /issues/:id/:action. */
export const issueAction: PageHandler = async (c, deps) => {
  const session = c.get("session");
  // The API would refuse it too; say so before asking.
  if (!session.canAct) return c.text("refused: your role may not change issues", 403);
  const id = c.req.param("id") ?? "";
  const action = ACTIONS.find((a) => a === c.req.param("action"));
  if (action === undefined) return c.text("no such action", 404);
  const body = await c.req.parseBody();
  const values: Record<string, string> = {};
  for (const [k, v] of Object.entries(body)) if (typeof v === "string") values[k] = v;
  const view = { days: DEFAULT_DAYS, devicesOffset: 0 };
  const refuse = (error: string) => showIssue(c, deps, id, view, { action, error, values });
  const issues = session.api.api.v1.issues[":id"];
  const param = { id };

  if (action === "transition") {
    const to = TransitionTarget.options.find((t) => t === field(body, "to"));
    if (to === undefined) return refuse("Choose what to move the issue to with one of the buttons.");
    const note = field(body, "note");
    const fixVersion = field(body, "fixVersion");
    if (to === "fix_released" && fixVersion === "")
      return refuse("Fix released needs the version that fixes it.");
    const result = await load(
      issues.transitions.$post({
        param,
        query: {},
        json: {
          to,
          ...(note === "" ? {} : { reason: note }),
          ...(to === "fix_released" ? { fixVersion } : {}),
        },
      }),
    );
    if (!result.ok) return refuse(refusalText(result));
    flash(c, `Issue ${result.data.status.replace(/_/g, " ")}${note === "" ? "." : ", with your note."}`);
  } else if (action === "assign") {
    const assignee = field(body, "unassign") === "" ? field(body, "assignee") : "";
    if (field(body, "unassign") === "" && assignee === "") return refuse("Enter who to assign it to.");
    const result = await load(
      issues.assignee.$post({ param, query: {}, json: { assignee: assignee === "" ? null : assignee } }),
    );
    if (!result.ok) return refuse(refusalText(result));
    flash(c, assignee === "" ? "Issue unassigned." : `Issue assigned to ${assignee}.`);
  } else {
    const text = field(body, "text");
    if (text === "") return refuse("Write the comment first.");
    const result = await load(issues.notes.$post({ param, query: {}, json: { text } }));
    if (!result.ok) return refuse(refusalText(result));
    flash(c, "Comment added to the history.");
  }
  return c.redirect(`/issues/${encodeURIComponent(id)}`, 303);
};

/** The API's message without its code ("REASON_REQUIRED: new → closed needs a reason"). */
const plain = (message: string) => message.replace(/^[A-Z_]+: /, "");

function refusalText(failure: { status: number; message: string }): string {
  if (failure.status === 409)
    return `Not possible now: ${plain(failure.message)}. The page shows the issue as it is now.`;
  if (failure.status === 400) return `Refused: ${plain(failure.message)}.`;
  if (failure.status === 403) return "Your role may not change issues.";
  return `The change was not recorded: ${failure.message}.`;
}
