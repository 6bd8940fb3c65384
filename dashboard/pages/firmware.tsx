import type { CohortRanking, FirmwareComparison, FirmwareVersions } from "../../contract/api/fleet.js";
import type { RegressionVerdict } from "../../contract/api/regressions.js";
import { DAY_MS } from "../../contract/time.js";
import { Chart, ErrorState, Panel } from "../components.js";
import { render } from "../layout.js";
import { failureText, type Loaded, load } from "../load.js";
import type { PageHandler } from "../page.js";
import type { Session } from "../session.js";
import { FirmwareFeedbackPanel, loadFirmwareFeedback } from "./firmware-feedback.js";
import {
  adoptionChart,
  CodesTable,
  CohortsTable,
  compareChart,
  EvidenceList,
  FindingsTable,
  type VersionRow,
  VersionsTable,
  verdictSentence,
} from "./firmware-parts.js";

// The quality engineer's morning check: is the new firmware worse? Versions with adoption and verdicts, what the
// regression scan found without asking, any two versions compared with the interval drawn, the worst cohort.
// Everything the page shows is chosen by its URL (model, a, b, window, dimension), so a link opens the same view.

const WINDOWS = [7, 14, 30] as const;
const DIMENSIONS = ["isp", "region", "hardware", "firmware"] as const;
type Dimension = (typeof DIMENSIONS)[number];

type Model = FirmwareVersions["models"][number];

export type FirmwareQuery = {
  model: string | undefined;
  a: string | undefined;
  b: string | undefined;
  windowDays: (typeof WINDOWS)[number];
  dimension: Dimension;
};

export function parseFirmwareQuery(query: (name: string) => string | undefined): FirmwareQuery {
  const nonEmpty = (name: string) => {
    const value = query(name)?.trim();
    return value === undefined || value === "" ? undefined : value;
  };
  const windowDays = WINDOWS.find((w) => String(w) === query("window")) ?? 30;
  const dimension = DIMENSIONS.find((d) => d === query("dimension")) ?? "isp";
  return { model: nonEmpty("model"), a: nonEmpty("a"), b: nonEmpty("b"), windowDays, dimension };
}

/** The pair to compare: the URL's when both are versions of the model, else the newest and its predecessor. */
export function comparePair(
  model: Model | undefined,
  a: string | undefined,
  b: string | undefined,
): { baseline: string; candidate: string; note: string | null } | null {
  if (model === undefined) return null;
  const versions = model.versions.map((v) => v.firmware);
  if (a !== undefined && b !== undefined && a !== b && versions.includes(a) && versions.includes(b))
    return { baseline: a, candidate: b, note: null };
  const candidate = versions.at(-1);
  const baseline = versions.at(-2);
  if (candidate === undefined || baseline === undefined) return null;
  const missing = [a, b].filter((v) => v !== undefined && !versions.includes(v));
  const note =
    a === undefined && b === undefined
      ? null
      : a === b
        ? "Baseline and candidate were the same version: showing the newest against its predecessor."
        : missing.length > 0
          ? `${model.model} has no exposure on ${missing.join(" or ")} in this window: showing the newest against its predecessor.`
          : "Choose both a baseline and a candidate: showing the newest against its predecessor.";
  return { baseline, candidate, note };
}

/** The model compared when the URL names none: the one the scan's newest firmware finding is about, else the first with two versions. */
function defaultCompareModel(models: Model[], findings: RegressionVerdict[]): Model | undefined {
  const withTwo = models.filter((m) => m.versions.length >= 2);
  const flagged = findings.find(
    (f) => f.subject.kind === "firmware" && withTwo.some((m) => m.model === f.model),
  );
  return withTwo.find((m) => m.model === flagged?.model) ?? withTwo[0];
}

export const firmwarePage: PageHandler = async (c, deps) => {
  const session = c.get("session");
  const q = parseFirmwareQuery((name) => c.req.query(name));
  const from = new Date(deps.now() - q.windowDays * DAY_MS).toISOString();
  const api = session.api.api.v1;
  const modelFilter = q.model === undefined ? {} : { model: q.model };

  const [versions, findings, cohorts, feedback] = await Promise.all([
    // Every model's versions: the compare form offers them all whatever the filter shows.
    load(api.firmware.$get({ query: { from } })),
    load(api.firmware.regressions.$get({ query: modelFilter })),
    load(api.fleet.cohorts.$get({ query: { ...modelFilter, dimension: q.dimension, from } })),
    loadFirmwareFeedback(session, from, q.model),
  ]);
  const models = versions.ok ? versions.data.models : [];
  const shown = models.filter((m) => q.model === undefined || m.model === q.model);
  const items = findings.ok ? findings.data.items : [];
  const compareModel =
    q.model === undefined ? defaultCompareModel(models, items) : models.find((m) => m.model === q.model);
  const pair = comparePair(compareModel, q.a, q.b);

  const compare = comparer(session, from);
  const [rows, comparison] = await Promise.all([
    Promise.all(shown.map((m) => versionRows(compare, m, items, from, session))),
    pair === null || compareModel === undefined
      ? Promise.resolve(undefined)
      : compare(compareModel.model, pair.baseline, pair.candidate),
  ]);

  const hidden = (names: Array<keyof FirmwareQuery>) => (
    <>
      {names.map((name) => {
        const value = name === "windowDays" ? String(q.windowDays) : q[name];
        return value === undefined ? null : (
          <input type="hidden" name={name === "windowDays" ? "window" : name} value={value} />
        );
      })}
    </>
  );

  const modelNames = models.map((m) => m.model);
  if (q.model !== undefined && !modelNames.includes(q.model)) modelNames.push(q.model);

  return render(c, deps.assets, {
    title: "Firmware",
    section: "firmware",
    actions: (
      <form class="filters fw-filters" method="get" action="/firmware">
        <label>
          Model
          <select name="model">
            <option value="" selected={q.model === undefined}>
              All models
            </option>
            {modelNames.map((m) => (
              <option value={m} selected={m === q.model}>
                {m}
              </option>
            ))}
          </select>
        </label>
        <WindowSelect id="fw-window" value={q.windowDays} />
        {hidden(["dimension"])}
        <button type="submit">Show</button>
      </form>
    ),
    children: (
      <div class="panels">
        <Panel
          title="Versions and their verdicts"
          live="versions"
          wide
          loaded={versions.ok ? { ok: true, data: shown } : versions}
          isEmpty={(d) => d.length === 0}
          empty={`No firmware reported activity in the last ${q.windowDays} days${q.model === undefined ? "" : ` on ${q.model}`}.`}
          render={(d) => (
            <>
              <p class="help">
                Each version against its predecessor and against the rest of its model, devices compared one
                by one over the last {q.windowDays} days; "scan" is what the regression scan holds now without
                anyone asking.
              </p>
              {d.map((m, i) => (
                <div class="fw-model">
                  <VersionsTable model={m.model} rows={rows[i] ?? []} />
                  {m.versions.length < 2 ? null : <Chart chart={adoptionChart(m)} />}
                  {m.versions.length < 2 ? (
                    <p class="empty">Only one version of {m.model} has exposure: nothing to compare.</p>
                  ) : null}
                </div>
              ))}
            </>
          )}
        />
        <Panel
          title="Regressions found without asking"
          live="findings"
          wide
          loaded={findings}
          isEmpty={(d) => d.items.length === 0}
          empty={`The regression scan holds no regression or improvement${q.model === undefined ? "" : ` on ${q.model}`} over the last 30 days of data: no version, ISP, region or hardware revision stands out.`}
          render={(d) => <FindingsTable items={d.items} />}
        />
        <FirmwareFeedbackPanel loaded={feedback} windowDays={q.windowDays} />
        <section class="panel wide" aria-labelledby="panel-compare">
          <header class="panel-head">
            <h2 id="panel-compare">Compare two versions</h2>
          </header>
          <CompareForm
            models={models}
            model={compareModel?.model}
            baseline={pair?.baseline}
            candidate={pair?.candidate}
            windowDays={q.windowDays}
            extra={hidden(["dimension"])}
          />
          <div data-live="compare">
            <CompareResult
              versions={versions}
              model={compareModel}
              pair={pair}
              comparison={comparison}
              windowDays={q.windowDays}
              asked={q.model}
            />
          </div>
        </section>
        <Panel
          title="Which cohort is worst"
          live="cohorts"
          wide
          loaded={cohorts}
          isEmpty={(d) => d.cohorts.length === 0}
          empty="No value of this dimension has a rest to be compared with (every device shares it, or none reports it)."
          extra={
            <form class="filters fw-inline" method="get" action="/firmware">
              <label>
                Compare each
                <select name="dimension">
                  {DIMENSIONS.map((d) => (
                    <option value={d} selected={d === q.dimension}>
                      {
                        { isp: "ISP", region: "region", hardware: "hardware revision", firmware: "firmware" }[
                          d
                        ]
                      }
                    </option>
                  ))}
                </select>
              </label>
              {hidden(["model", "a", "b", "windowDays"])}
              <button type="submit">Rank</button>
            </form>
          }
          render={(d: CohortRanking) => <CohortsTable ranking={d} />}
        />
      </div>
    ),
  });
};

function WindowSelect(props: { id: string; value: number }) {
  return (
    <label>
      Window
      <select name="window" id={props.id}>
        {WINDOWS.map((w) => (
          <option value={String(w)} selected={w === props.value}>
            last {w} days
          </option>
        ))}
      </select>
    </label>
  );
}

function CompareForm(props: {
  models: Model[];
  model: string | undefined;
  baseline: string | undefined;
  candidate: string | undefined;
  windowDays: number;
  extra: unknown;
}) {
  const versions = props.models.find((m) => m.model === props.model)?.versions.map((v) => v.firmware) ?? [];
  const select = (name: "a" | "b", selected: string | undefined) => (
    <select name={name} id={`fw-${name}`}>
      {versions.map((v) => (
        <option value={v} selected={v === selected}>
          {v}
        </option>
      ))}
    </select>
  );
  return (
    <form class="filters" method="get" action="/firmware">
      <label>
        Model
        <select name="model">
          {props.models.map((m) => (
            <option value={m.model} selected={m.model === props.model}>
              {m.model}
            </option>
          ))}
        </select>
      </label>
      <label for="fw-a">
        Baseline
        {select("a", props.baseline)}
      </label>
      <label for="fw-b">
        Candidate
        {select("b", props.candidate)}
      </label>
      <WindowSelect id="fw-compare-window" value={props.windowDays} />
      {props.extra}
      <button type="submit">Compare</button>
    </form>
  );
}

function CompareResult(props: {
  versions: Loaded<FirmwareVersions>;
  model: Model | undefined;
  pair: ReturnType<typeof comparePair>;
  comparison: Loaded<FirmwareComparison> | undefined;
  windowDays: number;
  /** The model the URL names, if any. */
  asked: string | undefined;
}) {
  if (!props.versions.ok) return <ErrorState message={failureText(props.versions)} />;
  if (props.model === undefined)
    return (
      <p class="empty">
        {props.asked === undefined
          ? `No model has two versions with exposure in the last ${props.windowDays} days: nothing to compare.`
          : `${props.asked} reported no activity in the last ${props.windowDays} days: nothing to compare.`}
      </p>
    );
  if (props.pair === null || props.comparison === undefined)
    return (
      <p class="empty">
        Only one version of {props.model.model} has exposure in the last {props.windowDays} days: nothing to
        compare.
      </p>
    );
  if (!props.comparison.ok) return <ErrorState message={failureText(props.comparison)} />;
  const comparison = props.comparison.data;
  return (
    <>
      {props.pair.note === null ? null : (
        <p class="help" role="status">
          {props.pair.note}
        </p>
      )}
      <p class="fw-sentence">{verdictSentence(comparison)}</p>
      <Chart chart={compareChart(comparison)} />
      <EvidenceList comparison={comparison} />
      {comparison.byCode.length === 0 ? (
        <p class="empty">No faults on either version: no code to compare.</p>
      ) : (
        <CodesTable comparison={comparison} />
      )}
    </>
  );
}

/** GET /firmware/compare, asked once per pair in a request (the chosen pair is often a version and its predecessor). */
function comparer(session: Session, from: string) {
  const api = session.api.api.v1;
  const call = (model: string, baseline: string, candidate: string) =>
    load(api.firmware.compare.$get({ query: { model, baseline, candidate, from } }));
  const asked = new Map<string, ReturnType<typeof call>>();
  return (model: string, baseline: string, candidate: string) => {
    const key = JSON.stringify([model, baseline, candidate]);
    const known = asked.get(key) ?? call(model, baseline, candidate);
    asked.set(key, known);
    return known;
  };
}

type Compare = ReturnType<typeof comparer>;

/** Each version's row: adoption, its comparisons with its predecessor and with the rest, the scan's verdicts. */
async function versionRows(
  compare: Compare,
  model: Model,
  findings: RegressionVerdict[],
  from: string,
  session: Session,
): Promise<VersionRow[]> {
  const api = session.api.api.v1;
  const vs = model.versions;
  const [rest, predecessors] = await Promise.all([
    vs.length < 2
      ? Promise.resolve(undefined)
      : load(api.fleet.cohorts.$get({ query: { model: model.model, dimension: "firmware", from } })),
    Promise.all(
      vs.map((v, i) => {
        const previous = vs[i - 1];
        return previous === undefined
          ? Promise.resolve(undefined)
          : compare(model.model, previous.firmware, v.firmware);
      }),
    ),
  ]);
  return vs.map((v, i) => {
    const against = predecessors[i];
    const cohort = rest?.ok ? rest.data.cohorts.find((c) => c.value === v.firmware) : undefined;
    return {
      firmware: v.firmware,
      firstSeen: v.firstSeen,
      devicesNow: v.devicesNow,
      devices: v.devices,
      exposureHours: v.exposureHours,
      share: latestShare(v.adoption),
      predecessor: vs[i - 1]?.firmware ?? null,
      againstPredecessor: against?.ok ? against.data.overall : undefined,
      predecessorWorseOn: against?.ok
        ? against.data.byCode.filter((b) => b.comparison.verdict === "regression").map((b) => b.code)
        : [],
      againstRest: cohort?.overall,
      restWorseOn: cohort?.regressedCodes ?? [],
      found: findings.filter(
        (f) => f.model === model.model && f.subject.kind === "firmware" && f.subject.firmware === v.firmware,
      ),
    };
  });
}

/** The share on the newest day with any device of the model active. */
function latestShare(adoption: Array<{ share: number | null }>): number | null {
  for (let i = adoption.length - 1; i >= 0; i--) {
    const share = adoption[i]?.share;
    if (share !== null && share !== undefined) return share;
  }
  return null;
}
