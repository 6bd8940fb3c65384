import type { CohortRanking, FirmwareComparison, RateComparison } from "../../contract/api/fleet.js";
import type { RegressionVerdict } from "../../contract/api/regressions.js";
import type { ChartEmbed } from "../chart-spec.js";
import { Badge, TableWrap, Verdict, When } from "../components.js";
import { count, decimal, percent, ratioText } from "../format.js";

// The firmware page's pieces: how a rate comparison reads (verdict, ratio, interval, devices, what would settle
// it), the compare chart and tables, the scan's findings and the cohort ranking. Pure: data in, markup out.

/** The ratio with its interval, saying so when the interval has no upper end (no fault in the baseline). */
export function comparisonRatio(comparison: RateComparison): string {
  const { rateRatio, ci, rateRatioMissing } = comparison;
  if (rateRatio === null) {
    if (rateRatioMissing === "no_events") return "no faults on either side";
    if (ci !== null) return `above ${decimal(ci.lower)} (no faults in the baseline)`;
    return "no ratio";
  }
  if (ci === null) return decimal(rateRatio);
  if (ci.upperUnbounded || ci.upper === null)
    return `${decimal(rateRatio)} (95% CI ${decimal(ci.lower)}–unbounded)`;
  return ratioText(rateRatio, ci.lower, ci.upper);
}

/** What would settle an open verdict, or why nothing will. Null for a settled one. */
export function settleText(comparison: RateComparison): string | null {
  if (comparison.verdict !== "insufficient_evidence") return null;
  const { evidence, moreExposureNeeded: more } = comparison;
  if (evidence.refused === "too_few_devices") {
    const min = evidence.minDevices === undefined ? "" : ` (at least ${evidence.minDevices} a side)`;
    return `too few devices for a verdict${min}: more devices would settle it, not more hours`;
  }
  if (more === null) return null;
  if (more.reachable)
    return `about ${decimal(more.factor)}× the exposure would settle it (${count(more.baselineHours)} h baseline, ${count(more.candidateHours)} h candidate)`;
  return more.reason === "no_events"
    ? "no faults on either side yet: only faults can settle it"
    : `even ${count(more.maxFactor)}× the exposure would not settle it: the rates are close, but not provably within the margin`;
}

/** One comparison as a table cell: the verdict word, the ratio, devices per side, what would settle it. */
export function ComparisonCell(props: {
  comparison: RateComparison | undefined;
  missing: string;
  /** Codes whose own comparison regresses: worse there even when the overall verdict is not. */
  worseOn?: string[];
}) {
  const { comparison } = props;
  const worseOn = props.worseOn ?? [];
  if (comparison === undefined) return <span class="fw-muted">{props.missing}</span>;
  const settle = settleText(comparison);
  const { devices } = comparison.evidence;
  const regressedByCode = worseOn.length > 0 && comparison.verdict !== "regression";
  return (
    <div class="fw-cell">
      <Verdict verdict={regressedByCode ? "regression" : comparison.verdict} />
      {regressedByCode ? (
        <span>worse on {worseOn.join(", ")}</span>
      ) : (
        <span class="fw-ratio">{comparisonRatio(comparison)}</span>
      )}
      {regressedByCode ? (
        <span class="fw-note">
          overall {comparisonRatio(comparison)}, {comparison.verdict.replace(/_/g, " ")}
        </span>
      ) : worseOn.length === 0 ? null : (
        <span class="fw-note">worse on {worseOn.join(", ")}</span>
      )}
      <span class="fw-note">
        devices: {count(devices.candidate)} against {count(devices.baseline)}
      </span>
      {settle === null || regressedByCode ? null : <span class="fw-note">{settle}</span>}
    </div>
  );
}

export type VersionRow = {
  firmware: string;
  firstSeen: string;
  devicesNow: number;
  devices: number;
  exposureHours: number;
  share: number | null;
  predecessor: string | null;
  /** Against the predecessor, when there is one (GET /firmware/compare). */
  againstPredecessor: RateComparison | undefined;
  predecessorWorseOn: string[];
  /** Against the rest of the model (GET /fleet/cohorts, dimension firmware). */
  againstRest: RateComparison | undefined;
  restWorseOn: string[];
  /** What the regression scan holds on this version, if anything. */
  found: RegressionVerdict[];
};

export function VersionsTable(props: { model: string; rows: VersionRow[] }) {
  return (
    <TableWrap label={`Firmware versions of ${props.model}`}>
      <table>
        <caption class="fw-caption">{props.model}</caption>
        <thead>
          <tr>
            <th scope="col">Version</th>
            <th scope="col">First seen</th>
            <th scope="col" class="num">
              Devices now (share)
            </th>
            <th scope="col" class="num">
              In window
            </th>
            <th scope="col" class="num">
              Device-hours
            </th>
            <th scope="col">Against its predecessor</th>
            <th scope="col">Against the rest of the model</th>
            <th scope="col">Scan</th>
          </tr>
        </thead>
        <tbody>
          {[...props.rows].reverse().map((row) => (
            <tr>
              <th scope="row">{row.firmware}</th>
              <td>
                <When iso={row.firstSeen} format="date" />
              </td>
              <td class="num">
                {count(row.devicesNow)} ({percent(row.share)})
              </td>
              <td class="num">{count(row.devices)}</td>
              <td class="num">{count(row.exposureHours)}</td>
              <td>
                {row.predecessor === null ? (
                  <span class="fw-muted">oldest version in the window</span>
                ) : (
                  <>
                    <span class="fw-note">vs {row.predecessor}</span>
                    <ComparisonCell
                      comparison={row.againstPredecessor}
                      worseOn={row.predecessorWorseOn}
                      missing="could not compare"
                    />
                  </>
                )}
              </td>
              <td>
                <ComparisonCell
                  comparison={row.againstRest}
                  worseOn={row.restWorseOn}
                  missing={
                    row.predecessor === null && props.rows.length < 2 ? "no other version" : "not judged"
                  }
                />
              </td>
              <td>
                {row.found.length === 0 ? (
                  <span class="fw-muted">nothing found</span>
                ) : (
                  row.found.map((f) => (
                    <div class="fw-cell">
                      <Verdict verdict={f.verdict} />{" "}
                      <span class="fw-note">
                        vs {f.subject.kind === "firmware" ? baselineName(f.subject) : "the rest"}, since{" "}
                        <When iso={f.firstReached} />
                      </span>
                    </div>
                  ))
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableWrap>
  );
}

function baselineName(subject: { baseline: "predecessor" | "rest"; baselineFirmware: string[] }): string {
  return subject.baseline === "predecessor"
    ? `predecessor ${subject.baselineFirmware.join(", ")}`
    : `the rest (${subject.baselineFirmware.join(", ")})`;
}

/** What a finding of the scan judged, in words. */
export function subjectText(item: RegressionVerdict): string {
  const { subject } = item;
  if (subject.kind === "firmware")
    return `${item.model ?? item.deviceKind} firmware ${subject.firmware} against ${baselineName(subject)}`;
  const dimension = { isp: "ISP", region: "region", hardware: "hardware" }[subject.dimension];
  const scope =
    subject.scope === "model"
      ? `the rest of ${item.model ?? item.deviceKind}`
      : `every other ${item.deviceKind}`;
  return `${dimension} ${subject.value} (${item.model ?? `all ${item.deviceKind} models`}) against ${scope}`;
}

export function FindingsTable(props: { items: RegressionVerdict[] }) {
  return (
    <TableWrap label="Verdicts found by the regression scan">
      <table>
        <thead>
          <tr>
            <th scope="col">First reached</th>
            <th scope="col">What</th>
            <th scope="col">Verdict</th>
            <th scope="col">Codes</th>
            <th scope="col">Overall</th>
          </tr>
        </thead>
        <tbody>
          {props.items.map((item) => (
            <tr>
              <td>
                <When iso={item.firstReached} />
              </td>
              <th scope="row">{subjectText(item)}</th>
              <td>
                <Verdict verdict={item.verdict} />
              </td>
              <td>
                {item.codes.length === 0 ? (
                  <span class="fw-muted">overall only</span>
                ) : (
                  <ul class="fw-codes">
                    {item.codes.map((c) => (
                      <li>
                        <strong>{c.code}</strong> {comparisonRatio(c.comparison)}
                        <span class="fw-note">
                          {count(c.comparison.candidate.count)} faults in{" "}
                          {count(c.comparison.candidate.exposureHours)} h vs{" "}
                          {count(c.comparison.baseline.count)} in {count(c.comparison.baseline.exposureHours)}{" "}
                          h
                          {c.comparison.evidence.adjustedPValue === null
                            ? ""
                            : `; Holm p ${pText(c.comparison.evidence.adjustedPValue)}`}
                        </span>
                      </li>
                    ))}
                  </ul>
                )}
              </td>
              <td>
                <ComparisonCell comparison={item.overall} missing="–" />
                <span class="fw-note">
                  one of {count(item.familySize)} comparisons judged together (Holm), window{" "}
                  <When iso={item.from} format="date" /> – <When iso={item.to} format="date" />
                </span>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableWrap>
  );
}

export function pText(p: number | null): string {
  if (p === null) return "–";
  if (p < 0.0001) return "< 0.0001";
  return p.toLocaleString("en", { maximumSignificantDigits: 2 });
}

/** The ratio and its interval drawn: overall first, then each code, on a log axis around 1. */
export function compareChart(comparison: FirmwareComparison): ChartEmbed {
  const rows = [
    { label: "Overall", c: comparison.overall },
    ...comparison.byCode.map((b) => ({ label: b.code, c: b.comparison })),
  ].map(({ label, c }) => ({
    label,
    ratio: c.rateRatio,
    low: c.ci?.lower ?? null,
    high: c.ci === null || c.ci.upperUnbounded ? null : c.ci.upper,
    verdict: c.verdict.replace(/_/g, " "),
  }));
  const { baseline, candidate } = comparison;
  return {
    spec: { kind: "interval", rows },
    title: `Fault rate of ${comparison.model} ${candidate.firmware} against ${baseline.firmware} (rate ratio, 95% interval)`,
    summary: `${candidate.firmware} against ${baseline.firmware}: overall ${comparisonRatio(comparison.overall)}, ${comparison.overall.verdict.replace(/_/g, " ")}; ${comparison.byCode.length} codes compared. Right of 1 is worse.`,
    height: Math.max(120, 44 + rows.length * 32),
  };
}

/** The verdict in words, the way an engineer would say it on the morning call. */
export function verdictSentence(comparison: FirmwareComparison): string {
  const { overall, byCode, baseline, candidate } = comparison;
  const b = baseline.firmware;
  const a = candidate.firmware;
  const regressed = byCode.filter((x) => x.comparison.verdict === "regression").map((x) => x.code);
  const improved = byCode.filter((x) => x.comparison.verdict === "improvement").map((x) => x.code);
  const head =
    overall.verdict === "regression"
      ? `${a} is worse than ${b}: it faults ${comparisonRatio(overall)} times as often.`
      : overall.verdict === "improvement"
        ? `${a} is better than ${b}: it faults ${comparisonRatio(overall)} times as often.`
        : overall.verdict === "no_difference"
          ? `${a} and ${b} fault at the same rate, within ×${decimal(overall.equivalenceMargin)} either way (ratio ${comparisonRatio(overall)}).`
          : `Not enough evidence yet to tell ${a} from ${b} overall (ratio ${comparisonRatio(overall)}).`;
  const codes = [
    regressed.length === 0 ? "" : ` Worse on ${regressed.join(", ")}.`,
    improved.length === 0 ? "" : ` Better on ${improved.join(", ")}.`,
  ].join("");
  return `${head}${codes}`;
}

export function EvidenceList(props: { comparison: FirmwareComparison }) {
  const { overall, baseline, candidate } = props.comparison;
  const e = overall.evidence;
  const settle = settleText(overall);
  return (
    <dl class="fw-evidence">
      <div>
        <dt>Exposure</dt>
        <dd>
          {count(candidate.exposureHours)} h on {candidate.firmware}, {count(baseline.exposureHours)} h on{" "}
          {baseline.firmware}
        </dd>
      </div>
      <div>
        <dt>Faults</dt>
        <dd>
          {count(overall.candidate.count)} ({decimal(overall.candidate.ratePer1000h)} per 1,000 h) vs{" "}
          {count(overall.baseline.count)} ({decimal(overall.baseline.ratePer1000h)} per 1,000 h)
        </dd>
      </div>
      <div>
        <dt>Devices</dt>
        <dd>
          {count(e.devices.candidate)} on {candidate.firmware}, {count(e.devices.baseline)} on{" "}
          {baseline.firmware}
          {e.minDevices === undefined ? "" : ` (a verdict needs ${e.minDevices} a side)`}
          {e.refused === "too_few_devices" ? <Badge tone="warn">too few devices</Badge> : null}
        </dd>
      </div>
      <div>
        <dt>Method</dt>
        <dd>
          {e.method === "exact_poisson"
            ? "exact Poisson test (devices alike)"
            : "quasi-Poisson (interval widened because devices differ)"}
          ; dispersion {decimal(e.dispersion)} (used {decimal(e.dispersionUsed)})
        </dd>
      </div>
      <div>
        <dt>p-value</dt>
        <dd>
          {pText(overall.pValue)}; the per-code verdicts are one family of{" "}
          {count(props.comparison.byCode.length)} (Holm-adjusted p in the table)
        </dd>
      </div>
      {settle === null ? null : (
        <div>
          <dt>To settle it</dt>
          <dd>{settle}</dd>
        </div>
      )}
    </dl>
  );
}

export function CodesTable(props: { comparison: FirmwareComparison }) {
  const { baseline, candidate, byCode } = props.comparison;
  return (
    <TableWrap label="Per code">
      <table>
        <thead>
          <tr>
            <th scope="col">Code</th>
            <th scope="col" class="num">
              Faults on {candidate.firmware}
            </th>
            <th scope="col" class="num">
              Faults on {baseline.firmware}
            </th>
            <th scope="col" class="num">
              Per 1,000 h ({candidate.firmware} / {baseline.firmware})
            </th>
            <th scope="col">Ratio (95% CI)</th>
            <th scope="col" class="num">
              Holm p
            </th>
            <th scope="col">Verdict</th>
          </tr>
        </thead>
        <tbody>
          {byCode.map(({ code, comparison: c }) => (
            <tr>
              <th scope="row">{code}</th>
              <td class="num">{count(c.candidate.count)}</td>
              <td class="num">{count(c.baseline.count)}</td>
              <td class="num">
                {decimal(c.candidate.ratePer1000h)} / {decimal(c.baseline.ratePer1000h)}
              </td>
              <td>{comparisonRatio(c)}</td>
              <td class="num">{pText(c.evidence.adjustedPValue)}</td>
              <td>
                <Verdict verdict={c.verdict} />
                {settleText(c) === null ? null : <span class="fw-note">{settleText(c)}</span>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableWrap>
  );
}

const DIMENSION_NAME: Record<CohortRanking["dimension"], { heading: string; text: string }> = {
  isp: { heading: "ISP", text: "ISP" },
  region: { heading: "Region", text: "region" },
  hardware: { heading: "Hardware", text: "hardware revision" },
  firmware: { heading: "Firmware", text: "firmware version" },
};

export function CohortsTable(props: { ranking: CohortRanking }) {
  const { ranking } = props;
  const { heading, text } = DIMENSION_NAME[ranking.dimension];
  return (
    <>
      <p class="help">
        Each {text} against the rest of {ranking.model ?? ranking.kind ?? "the fleet"} (
        {count(ranking.devices)} devices), worst first; {count(ranking.familySize)} comparisons judged
        together (Holm).
        {ranking.unknown.devices === 0
          ? ""
          : ` ${count(ranking.unknown.devices)} devices report no ${text}: they count in every rest.`}
      </p>
      <TableWrap label={`Cohorts by ${text}`}>
        <table>
          <thead>
            <tr>
              <th scope="col">{heading}</th>
              <th scope="col" class="num">
                Devices
              </th>
              <th scope="col" class="num">
                Device-hours
              </th>
              <th scope="col" class="num">
                Faults
              </th>
              <th scope="col" class="num">
                Per 1,000 h
              </th>
              <th scope="col">Against the rest</th>
            </tr>
          </thead>
          <tbody>
            {ranking.cohorts.map((c) => (
              <tr>
                <th scope="row">{c.value}</th>
                <td class="num">{count(c.devices)}</td>
                <td class="num">{count(c.exposureHours)}</td>
                <td class="num">{count(c.faults)}</td>
                <td class="num">{decimal(c.ratePer1000h)}</td>
                <td>
                  <ComparisonCell comparison={c.overall} worseOn={c.regressedCodes} missing="–" />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </TableWrap>
    </>
  );
}

type AdoptionModel = {
  model: string;
  versions: Array<{ firmware: string; adoption: Array<{ day: string; share: number | null }> }>;
};

/** Each version's share of the model's active devices per day: how far an update has rolled out. */
export function adoptionChart(model: AdoptionModel): ChartEmbed {
  const all = model.versions[0]?.adoption.map((a) => a.day) ?? [];
  // From the first day the model was active: a 30-day window over 3 days of history is mostly nothing.
  const start = Math.max(
    0,
    all.findIndex((_, i) => model.versions.some((v) => v.adoption[i]?.share !== null)),
  );
  const days = all.slice(start);
  const newest = model.versions.at(-1);
  const latest = newest?.adoption.at(-1)?.share ?? null;
  return {
    spec: {
      kind: "series",
      x: days.map((d) => Date.parse(d)),
      unit: "%",
      series: model.versions.map((v) => ({
        label: v.firmware,
        values: v.adoption
          .slice(start)
          .map((a) => (a.share === null ? null : Math.round(a.share * 1000) / 10)),
      })),
    },
    title: `Adoption of each ${model.model} version (share of the model's active devices per day)`,
    summary:
      newest === undefined
        ? "No version."
        : `${model.versions.length} versions over ${days.length} days; the newest, ${newest.firmware}, on ${percent(latest)} of the active devices on the last day.`,
    height: 150,
  };
}
