import { DAY_MS } from "../../contract/time.js";
import { Chart, Kpis, Panel } from "../components.js";
import { count, decimal, percent } from "../format.js";
import { render } from "../layout.js";
import { type Loaded, load } from "../load.js";
import type { PageHandler } from "../page.js";
import {
  AdoptionTable,
  adoptionChart,
  DaysWithData,
  IssueTable,
  paretoChart,
  RegressionList,
  regressionChart,
  SinceTable,
  type SinceYesterday,
  sinceYesterday,
  trendChart,
} from "./overview-parts.js";

// GET /: the fleet at a glance for the manager and the quality engineer. Key figures of the window, what got
// worse in the last 24 h, the trend per model and per firmware of one model, the issues that make most of the
// faults, firmware adoption, and what the regression scan found without being asked. The window and the model
// are in the URL (a GET form), so a pasted link opens the same view.

const WINDOWS = [
  { days: 1, label: "Last 24 hours" },
  { days: 7, label: "Last 7 days" },
  { days: 30, label: "Last 30 days" },
  { days: 90, label: "Last 90 days" },
] as const;
/** Trends are per day: a shorter window still shows a week of days. */
const MIN_TREND_DAYS = 7;

/** Both answers, or the first failure: a panel that needs two calls fails as one. */
function both<A, B>(a: Loaded<A>, b: Loaded<B>): Loaded<[A, B]> {
  if (!a.ok) return a;
  if (!b.ok) return b;
  return { ok: true, data: [a.data, b.data] };
}

/** Every answer that came, or the first failure when none did. */
function all<T>(
  items: Array<{ label: string; loaded: Loaded<T> }>,
): Loaded<Array<{ label: string; data: T }>> {
  const ok = items.flatMap((i) => (i.loaded.ok ? [{ label: i.label, data: i.loaded.data }] : []));
  const failed = items.find((i) => !i.loaded.ok)?.loaded;
  if (ok.length === 0 && failed !== undefined && !failed.ok) return failed;
  return { ok: true, data: ok };
}

export const overviewPage: PageHandler = async (c, deps) => {
  const api = c.get("session").api.api.v1;
  const asked = Number(c.req.query("window") ?? "7");
  const days = WINDOWS.find((w) => w.days === asked)?.days ?? 7;
  const now = deps.now();
  const to = new Date(now).toISOString();
  const from = new Date(now - days * DAY_MS).toISOString();
  const trendFrom = new Date(now - Math.max(days, MIN_TREND_DAYS) * DAY_MS).toISOString();

  const [summary, silent, online, versions, findings, issues] = await Promise.all([
    load(api.fleet.summary.$get({ query: { from, to, groupBy: "model" } })),
    load(api.devices.$get({ query: { status: "silent", limit: "1000" } })),
    load(api.devices.$get({ query: { status: "online", limit: "1" } })),
    load(api.firmware.$get({ query: { from: trendFrom, to } })),
    load(api.firmware.regressions.$get({ query: {} })),
    load(api.issues.$get({ query: { from, to, sort: "occurrences", limit: "1000" } })),
  ]);

  const models = [
    ...new Set([
      ...(summary.ok ? summary.data.groups.map((g) => g.group.model ?? "unknown") : []),
      ...(versions.ok ? versions.data.models.map((m) => m.model) : []),
    ]),
  ].sort();
  const versionsOf = versions.ok ? versions.data.models : [];
  // The model whose firmware trend is shown: the one asked for, else one the scan flagged, else one with
  // several versions to tell apart.
  const flagged = findings.ok ? findings.data.items.find((i) => i.model !== null)?.model : undefined;
  const askedModel = c.req.query("model");
  const chosen =
    (askedModel !== undefined && models.includes(askedModel) ? askedModel : undefined) ??
    (flagged !== null && flagged !== undefined && models.includes(flagged) ? flagged : undefined) ??
    versionsOf.find((m) => m.versions.length > 1)?.model ??
    models[0];
  const chosenVersions = versionsOf.find((m) => m.model === chosen);

  const [modelTrends, firmwareTrends] = await Promise.all([
    Promise.all(
      models.map(async (model) => ({
        label: model,
        loaded: await load(api.fleet.trend.$get({ query: { from: trendFrom, to, model } })),
      })),
    ),
    Promise.all(
      (chosenVersions?.versions ?? []).map(async (v) => ({
        label: v.firmware,
        loaded: await load(
          api.fleet.trend.$get({
            query: { from: trendFrom, to, model: chosenVersions?.model ?? "", firmware: v.firmware },
          }),
        ),
      })),
    ),
  ]);

  const windowLabel = WINDOWS.find((w) => w.days === days)?.label.toLowerCase() ?? `last ${days} days`;
  const actions = (
    <form method="get" action="/" class="ov-filters">
      <label>
        Window{" "}
        <select name="window">
          {WINDOWS.map((w) => (
            <option value={String(w.days)} selected={w.days === days}>
              {w.label}
            </option>
          ))}
        </select>
      </label>
      {models.length === 0 ? null : (
        <label>
          Model for firmware{" "}
          <select name="model">
            {models.map((m) => (
              <option value={m} selected={m === chosen}>
                {m}
              </option>
            ))}
          </select>
        </label>
      )}
      <button type="submit">Show</button>
    </form>
  );

  const kpiData = both(summary, online);
  // New and regressed issues of the last day are in the window's list whatever the window (at least a day).
  const failed = [findings, issues, silent].find((l) => !l.ok);
  const since: Loaded<SinceYesterday[]> =
    failed !== undefined && !failed.ok
      ? failed
      : {
          ok: true,
          data: sinceYesterday(
            {
              findings: findings.ok ? findings.data.items : [],
              issues: issues.ok ? issues.data.items : [],
              silent: silent.ok ? silent.data.items : [],
            },
            now - DAY_MS,
          ),
        };
  return render(c, deps.assets, {
    title: "Fleet overview",
    section: "overview",
    actions,
    children: (
      <div class="panels">
        <Panel
          title={`Key figures, ${windowLabel}`}
          live="kpis"
          wide
          loaded={kpiData}
          isEmpty={([s]) => s.total.devices === 0}
          empty="No device has reported in this window. Devices appear here once they send data."
          render={([s, o]) => (
            <Kpis
              items={[
                {
                  label: "Active devices",
                  value: count(s.total.devices),
                  note: `${count(s.total.exposureHours)} device-hours`,
                },
                {
                  label: "Online now",
                  value: count(o.total),
                  // Not "of N active": the window's activity comes from rollups, which lag a live connection.
                  note: silent.ok ? `${count(silent.data.total)} silent now` : undefined,
                },
                {
                  label: "Faults per 1,000 device-hours",
                  value: decimal(s.total.faults.per1000h),
                  note: `${count(s.total.faults.count)} faults, ${count(s.total.faults.bySeverity.critical.count)} critical`,
                },
                {
                  label: "Fault-free devices",
                  value: percent(s.total.faultFreeShare),
                  note: `${count(s.total.faultyDevices)} with a fault`,
                },
                {
                  label: "Mean rating (0–10)",
                  value: decimal(s.total.feedback.mean),
                  note: `${count(s.total.feedback.count)} ratings`,
                },
              ]}
            />
          )}
        />
        <Panel
          title="Since yesterday"
          live="since"
          wide
          loaded={since}
          isEmpty={(rows) => rows.length === 0}
          empty="Nothing new in the last 24 hours: no new or regressed issue, no new regression verdict, no device gone silent."
          render={(rows) => <SinceTable rows={rows} />}
        />
        <Panel
          title="Fault rate per model"
          live="trend-models"
          loaded={all(modelTrends)}
          isEmpty={(lines) => lines.every((l) => l.data.days.every((d) => d.exposureHours === 0))}
          empty="No exposure in the window: no device reported activity."
          render={(lines) => {
            const chart = trendChart(
              lines.map((l) => ({ label: l.label, trend: l.data })),
              "Faults per 1,000 device-hours per day, per model",
              "per model",
            );
            const first = lines[0];
            return (
              <>
                {chart === null ? null : <Chart chart={chart} />}
                {first === undefined ? null : <DaysWithData trend={first.data} />}
              </>
            );
          }}
        />
        <Panel
          title={`Fault rate per firmware of ${chosen ?? "a model"}`}
          live="trend-firmware"
          loaded={all(firmwareTrends)}
          isEmpty={(lines) => lines.every((l) => l.data.days.every((d) => d.exposureHours === 0))}
          empty="No firmware of this model has exposure in the window."
          render={(lines) => {
            const chart = trendChart(
              lines.map((l) => ({ label: l.label, trend: l.data })),
              `Faults per 1,000 device-hours per day, per firmware of ${chosen ?? ""}`,
              `per firmware of ${chosen ?? ""}`,
            );
            return (
              <>
                {chart === null ? null : <Chart chart={chart} />}
                {chosen === undefined ? null : (
                  <p class="ov-note">
                    <a href={`/firmware?model=${encodeURIComponent(chosen)}`}>
                      Compare the firmware of {chosen}
                    </a>
                  </p>
                )}
              </>
            );
          }}
        />
        <Panel
          title="Top issues"
          live="issues"
          wide
          loaded={issues}
          isEmpty={(d) => d.items.length === 0}
          empty="No fault in this window."
          render={(d) => (
            <div class="ov-issues">
              <Chart chart={paretoChart(d.items, d.total)} />
              <IssueTable issues={d.items} total={d.total} />
            </div>
          )}
        />
        <Panel
          title="Regressions found without asking"
          live="regressions"
          loaded={findings}
          isEmpty={(d) => d.items.length === 0}
          empty="The regression scan holds no verdict now: no firmware, ISP, region or hardware revision is provably worse than its baseline over the last 30 days."
          extra={<a href="/firmware">Firmware</a>}
          render={(d) => (
            <>
              <Chart chart={regressionChart(d.items)} />
              <RegressionList items={d.items} />
            </>
          )}
        />
        <Panel
          title="Firmware adoption"
          live="adoption"
          loaded={versions}
          isEmpty={(d) => d.models.length === 0}
          empty="No firmware version has exposure in the window."
          render={(d) => {
            const model = d.models.find((m) => m.model === chosen);
            return (
              <div class="ov-adoption">
                <AdoptionTable models={d.models} />
                {model === undefined ? null : <Chart chart={adoptionChart(model)} />}
              </div>
            );
          }}
        />
      </div>
    ),
  });
};
