import type { EventRecord } from "../../contract/api/devices.js";
import type { FaultRecord } from "../../contract/api/faults.js";
import { Chart, Kpis, Panel, Severity, Status, TableWrap, When } from "../components.js";
import { count, decimal, duration } from "../format.js";
import { render } from "../layout.js";
import { type Loaded, load } from "../load.js";
import type { PageHandler } from "../page.js";
import { CommandsPanel, loadDeviceCommands } from "./device-commands.js";
import { FeedbackPanel, loadDeviceFeedback } from "./device-feedback.js";
import {
  adviceFor,
  chosenMetrics,
  markersOf,
  presenceBands,
  presenceChart,
  reportingBands,
  WINDOWS,
  type WindowName,
  windowOf,
} from "./device-timeline.js";

// One device, for the support agent with the customer on the phone: is it online and since when, its presence
// over the window, its metrics with its faults and events on the time axis, the open issues that hit it and
// what to tell the customer, its recent faults, events and ratings. The window is in the URL (?window=7d).

/** Faults marked on the charts; the table lists the newest FAULT_ROWS of them. */
const FAULTS_IN_WINDOW = 500;
const FAULT_ROWS = 25;

export const devicePage: PageHandler = async (c, deps) => {
  const session = c.get("session");
  const id = c.req.param("id") ?? "";
  const windowName = windowOf(c.req.query("window"));
  const toMs = deps.now();
  const fromMs = toMs - WINDOWS[windowName];
  const from = new Date(fromMs).toISOString();
  const to = new Date(toMs).toISOString();
  const device = session.api.api.v1.devices[":id"];
  const [summary, presence, faults, commands, feedback] = await Promise.all([
    load(device.summary.$get({ param: { id }, query: {} })),
    load(device.presence.$get({ param: { id }, query: { from, to, limit: "1000" } })),
    load(
      session.api.api.v1.faults.$get({ query: { device: id, from, to, limit: String(FAULTS_IN_WINDOW) } }),
    ),
    loadDeviceCommands(c, id),
    loadDeviceFeedback(c, id),
  ]);
  if (!summary.ok && (summary.status === 404 || summary.status === 400)) {
    return notFound(c, deps, id);
  }
  const metrics = summary.ok ? chosenMetrics(summary.data.metrics.values) : [];
  // No bucket narrower than the device reports: a line of mostly empty buckets would draw as dots or nothing.
  const everyS = Math.max(
    Math.ceil((toMs - fromMs) / 500 / 1000),
    summary.ok ? summary.data.expectedIntervalS : 0,
  );
  const series = await Promise.all(
    metrics.map((metric) =>
      load(device.telemetry.$get({ param: { id }, query: { metric, from, to, every: `${everyS}s` } })),
    ),
  );
  const d = summary.ok ? summary.data : undefined;
  const events = d?.recentEvents ?? [];
  const faultItems = faults.ok ? faults.data.items : (d?.recentFaults ?? []);
  const markers = markersOf({ fromMs, toMs, faults: faultItems, events });
  const title = d === undefined ? `Device ${id}` : `${d.id} · ${d.model}`;

  return render(c, deps.assets, {
    title,
    section: "devices",
    actions: <WindowPicker id={id} current={windowName} />,
    children: (
      <div class="panels device-page">
        <Panel
          title="Now"
          live="device-now"
          wide
          loaded={summary}
          empty=""
          render={(s) => (
            <>
              <Kpis
                items={[
                  { label: "Status", value: <Status status={s.status} />, note: sinceNote(s, toMs) },
                  { label: "Last report", value: <When iso={s.lastReport} />, note: "on the device's clock" },
                  {
                    label: "Firmware",
                    value: s.firmware,
                    note: s.hardware ? `hardware ${s.hardware}` : undefined,
                  },
                  {
                    label: "Mean rating",
                    value: s.feedback.mean === null ? "–" : decimal(s.feedback.mean),
                    note: `${count(s.feedback.count)} rating${s.feedback.count === 1 ? "" : "s"}`,
                  },
                ]}
              />
              <dl class="device-facts">
                <Fact name="Serial" value={s.serial ?? "– (no hello yet)"} />
                <Fact name="Kind" value={s.kind} />
                <Fact name="Model" value={s.model} />
                <Fact name="Region" value={s.region} />
                <Fact name="ISP" value={s.isp ?? "–"} />
                <Fact
                  name="Expected report interval"
                  value={`${duration(s.expectedIntervalS * 1000)} (${s.intervalSource})`}
                />
                <div>
                  <dt>Last message received</dt>
                  <dd>
                    <When iso={s.lastSeen} />
                  </dd>
                </div>
              </dl>
            </>
          )}
        />
        <Panel
          title="Open issues and advice"
          live="device-issues"
          wide
          loaded={summary}
          isEmpty={(s) => s.issues.available && s.issues.items.length === 0}
          empty="No open issue hits this device."
          render={(s) =>
            !s.issues.available ? (
              <p class="empty">This API runs without an issue store: no issues to show.</p>
            ) : (
              <ul class="device-issues">
                {s.issues.items.map((issue) => (
                  <li>
                    <a href={`/issues/${encodeURIComponent(issue.id)}`}>{issueName(issue)}</a>{" "}
                    <Status status={issue.status} />
                    <p class="advice">{adviceFor(issue, s.firmware)}</p>
                  </li>
                ))}
              </ul>
            )
          }
        />
        <Panel
          title="Presence"
          live="device-presence"
          wide
          loaded={presence}
          empty=""
          render={(p) => {
            const bands = reportingBands({
              bands: presenceBands({
                fromMs,
                toMs,
                records: p.items,
                online: d?.online ?? null,
                silentSinceMs:
                  d?.status === "silent" && d.lastReport !== null ? Date.parse(d.lastReport) : null,
              }),
              fromMs,
              toMs,
              reportedMs: series.flatMap((s) =>
                s.ok ? s.data.points.filter((pt) => pt.value !== null).map((pt) => Date.parse(pt.time)) : [],
              ),
              bucketMs: everyS * 1000,
              // A missed report or two is still reporting; longer is a gap.
              gapMs: 2 * Math.max(everyS * 1000, (d?.expectedIntervalS ?? 0) * 1000),
            });
            const share = (label: string) =>
              bands.filter((b) => b.label === label).reduce((sum, b) => sum + (b.toMs - b.fromMs), 0);
            return (
              <Chart
                chart={{
                  spec: presenceChart(bands, fromMs, toMs),
                  title: `Online, offline and silent over the last ${windowName}`,
                  summary:
                    bands.length === 0
                      ? `No presence known in the last ${windowName}.`
                      : `Online ${duration(share("online"))}, reporting with no presence known ${duration(share("reporting"))}, offline ${duration(share("offline"))}, silent ${duration(share("silent"))}${unknownText(toMs - fromMs - share("online") - share("reporting") - share("offline") - share("silent"))} of the last ${windowName}; ${count(p.items.length)} presence change${p.items.length === 1 ? "" : "s"}.`,
                  height: 90,
                }}
              />
            );
          }}
        />
        <section class="panel wide" aria-labelledby="panel-device-metrics" data-live="device-metrics">
          <header class="panel-head">
            <h2 id="panel-device-metrics">Metrics, with faults and events</h2>
          </header>
          {metrics.length === 0 ? (
            <p class="empty">
              {summary.ok ? "No numeric metric reported in the last 7 days." : "Metrics unknown: see above."}
            </p>
          ) : (
            <div class="device-charts">
              {series.map((loaded, i) => (
                <MetricChart
                  metric={metrics[i] ?? ""}
                  loaded={loaded}
                  markers={markers}
                  windowName={windowName}
                />
              ))}
            </div>
          )}
        </section>
        <Panel
          title={`Faults in the last ${windowName}`}
          live="device-faults"
          wide
          loaded={faults}
          isEmpty={(f) => f.items.length === 0}
          empty={`No fault in the last ${windowName}.`}
          render={(f) => (
            <FaultTable faults={f.items.slice(0, FAULT_ROWS)} more={f.items.length > FAULT_ROWS} />
          )}
        />
        <Panel
          title="Recent events"
          live="device-events"
          loaded={summary}
          isEmpty={(s) => s.recentEvents.length === 0}
          empty="No event reported."
          render={(s) => <EventTable events={s.recentEvents} />}
        />
        <Panel
          title="Ratings"
          live="device-ratings"
          loaded={summary}
          isEmpty={(s) => s.feedback.count === 0}
          empty="The customer has not rated this device."
          render={(s) => (
            <TableWrap label="Recent ratings">
              <table>
                <thead>
                  <tr>
                    <th scope="col">When</th>
                    <th scope="col">Rating</th>
                    <th scope="col">Comment</th>
                  </tr>
                </thead>
                <tbody>
                  {s.feedback.recent.map((r) => (
                    <tr>
                      <td>
                        <When iso={r.time} />
                      </td>
                      <td>{decimal(r.rating)}</td>
                      <td>{r.comment ?? "–"}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </TableWrap>
          )}
        />
        <CommandsPanel id={id} loaded={commands} canAct={session.canAct} />
        <FeedbackPanel id={id} loaded={feedback} canAct={session.canAct} />
        <Panel
          title="Latest values"
          live="device-values"
          wide
          loaded={summary}
          isEmpty={(s) => Object.keys(s.metrics.values).length === 0}
          empty="No telemetry in the last 7 days."
          render={(s) => (
            <dl class="device-facts">
              {Object.entries(s.metrics.values)
                .sort(([a], [b]) => a.localeCompare(b))
                .map(([name, value]) => (
                  <Fact name={name} value={typeof value === "number" ? decimal(value) : String(value)} />
                ))}
            </dl>
          )}
        />
      </div>
    ),
  });
};

function sinceNote(
  s: { status: string; lastReport: string | null; recentPresence: Array<{ time: string; state: string }> },
  nowMs: number,
) {
  const since = s.status === "silent" ? s.lastReport : changeTime(s.recentPresence, s.status);
  if (since === null) return undefined;
  return (
    <>
      for {duration(Math.max(0, nowMs - Date.parse(since)))}, since <When iso={since} />
    </>
  );
}

/** When the device entered its current state: the oldest change to it after the newest change away from it. */
function changeTime(presence: Array<{ time: string; state: string }>, state: string): string | null {
  let since: string | null = null;
  for (const p of presence) {
    if (p.state !== state) break;
    since = p.time;
  }
  return since;
}

/** Time the presence records say nothing about (before the first change in the window). */
const unknownText = (ms: number) => (ms > 0 ? `, unknown (no presence record) ${duration(ms)}` : "");

function Fact(props: { name: string; value: string }) {
  return (
    <div>
      <dt>{props.name}</dt>
      <dd>{props.value}</dd>
    </div>
  );
}

function issueName(issue: { id: string; key?: unknown; title?: unknown }): string {
  if (typeof issue.title === "string") return issue.title;
  if (typeof issue.key === "string") return issue.key.split("/").slice(-1)[0] ?? issue.key;
  return issue.id;
}

function WindowPicker(props: { id: string; current: WindowName }) {
  return (
    <nav class="window-picker" aria-label="Time window">
      {(Object.keys(WINDOWS) as WindowName[]).map((w) => (
        <a
          href={`/devices/${encodeURIComponent(props.id)}?window=${w}`}
          aria-current={w === props.current ? "true" : undefined}
        >
          Last {w}
        </a>
      ))}
    </nav>
  );
}

type Telemetry = {
  metric: string;
  everyMs: number;
  points: Array<{ time: string; value: number | boolean | null }>;
};

function MetricChart(props: {
  metric: string;
  loaded: Loaded<Telemetry>;
  markers: ReturnType<typeof markersOf>;
  windowName: WindowName;
}) {
  const { loaded, metric } = props;
  if (!loaded.ok) {
    return <Panel title={metric} loaded={loaded} empty="" render={() => null} />;
  }
  const points = loaded.data.points;
  const values = points.map((p) => (typeof p.value === "boolean" ? Number(p.value) : p.value));
  const present = values.filter((v): v is number => v !== null);
  const faults = props.markers.filter((m) => m.tone !== "event").length;
  const events = props.markers.length - faults;
  const summary =
    present.length === 0
      ? `No ${metric} reported in the last ${props.windowName}.`
      : `${metric} from ${decimal(Math.min(...present))} to ${decimal(Math.max(...present))}, last ${decimal(present[present.length - 1])}, mean per ${duration(loaded.data.everyMs)}; ${count(faults)} fault${faults === 1 ? "" : "s"} and ${count(events)} event${events === 1 ? "" : "s"} marked.`;
  return (
    <Chart
      chart={{
        spec: {
          kind: "series",
          x: points.map((p) => Date.parse(p.time)),
          series: [{ label: metric, values }],
          unit: unitOf(metric),
          markers: props.markers,
        },
        title: metric.replace(/_/g, " "),
        summary,
      }}
    />
  );
}

/** The unit a metric's name ends in (snr_margin_db → dB). */
function unitOf(metric: string): string {
  const suffix = metric.split("_").slice(-1)[0] ?? "";
  const units: Record<string, string> = {
    db: "dB",
    kbps: "kbit/s",
    ms: "ms",
    pct: "%",
    c: "°C",
    rpm: "rpm",
    mm: "mm",
    g: "g",
    s: "s",
    dbm: "dBm",
  };
  return units[suffix] ?? "";
}

function FaultTable(props: { faults: FaultRecord[]; more: boolean }) {
  return (
    <>
      <TableWrap label="Faults">
        <table class="faults-table">
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Fault</th>
              <th scope="col">Severity</th>
              <th scope="col">Component</th>
              <th scope="col">Firmware</th>
              <th scope="col">Details</th>
            </tr>
          </thead>
          <tbody>
            {props.faults.map((f) => (
              <tr>
                <td>
                  <When iso={f.ts} />
                </td>
                <th scope="row">{f.code}</th>
                <td>
                  <Severity severity={f.severity} />
                </td>
                <td>{f.component ?? "–"}</td>
                <td>{f.firmware}</td>
                <td>{[f.message, fieldsText(f.context)].filter((t) => t).join(" · ") || "–"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </TableWrap>
      {props.more ? (
        <p class="note">
          Showing the newest {count(props.faults.length)}; every one is marked on the charts above.
        </p>
      ) : null}
    </>
  );
}

function EventTable(props: { events: EventRecord[] }) {
  return (
    <TableWrap label="Events">
      <table>
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Event</th>
            <th scope="col">Details</th>
          </tr>
        </thead>
        <tbody>
          {props.events.map((e) => (
            <tr>
              <td>
                <When iso={e.ts} />
              </td>
              <th scope="row">{e.type.replace(/_/g, " ")}</th>
              <td>{fieldsText(e.data) || "–"}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableWrap>
  );
}

/** An object's fields as "a=1, b=x", short enough for a table cell. */
function fieldsText(data: Record<string, unknown>): string {
  return Object.entries(data)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(", ")
    .slice(0, 160);
}

function notFound(c: Parameters<PageHandler>[0], deps: Parameters<PageHandler>[1], id: string) {
  return render(
    c,
    deps.assets,
    {
      title: "Device not found",
      section: "devices",
      liveEverySeconds: 0,
      children: (
        <section class="panel" aria-labelledby="not-found">
          <h2 id="not-found">No device “{id}”</h2>
          <p>
            No device with this id has reported to fieldq. Search by the serial on its label, or by part of
            its id:
          </p>
          <search>
            <form class="filters" method="get" action="/devices">
              <div class="field">
                <label for="not-found-q">Serial, id or text</label>
                <input id="not-found-q" name="q" type="search" value={id} maxlength={128} />
              </div>
              <button type="submit">Search devices</button>
            </form>
          </search>
        </section>
      ),
    },
    404,
  );
}
