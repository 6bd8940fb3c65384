import {
  availabilityDays,
  type DayVerdict,
  dayRow,
  describePromise,
  faultRateDays,
  judgePromise,
  type NewIssue,
  PromisesFile,
  promisesOf,
  responseDays,
  type ServicePromise,
} from "../analytics/promises.js";
import { loadYamlFile } from "../config/yaml-file.js";
import type { PromiseAlarm, PromiseReport, PromisesAnswer } from "../contract/api/promises.js";
import { SEVERITIES, type Severity } from "../contract/messages.js";
import { err, ok, type Result } from "../contract/result.js";
import { alignHours, DAY_MS, dayPart, dayStarts, floorDay, iso, type Window } from "../contract/time.js";
import { cohortSumRows, cohortSumsQuery } from "../storage/health-queries.js";
import { answers } from "./answers.js";
import type { ServiceBag } from "./bag.js";

// Service promises per model (docs/promises.md): the file read once at start, each promise judged per UTC
// day from the rollups (availability from the "active" device sets, fault rates from cohort_1h/1d) and from
// the issue log (response times), with error budget, burn rate and status. Reads only.

export type PromiseServiceOptions = {
  /** The promises file (FIELDQ_PROMISES); undefined: nothing promised. */
  file: string | undefined;
};

export type PromisesInput = Window & { model?: string | undefined };

export interface PromiseService {
  /** Reads the promises file; the stack refuses to start on an error (file:line:col: path: message). */
  load(): Promise<Result<void, string>>;
  /** The promises read, in the file's order. */
  promised(): readonly ServicePromise[];
  /** Each model's promises with a row per UTC day of the window, judged as of the earlier of `to` and now. */
  report(input: PromisesInput): Promise<PromisesAnswer>;
  /** The promises breached or burning their error budget fast at nowMs: what the alert engine raises. */
  status(nowMs: number): Promise<PromiseAlarm[]>;
}

const NOTHING_PROMISED =
  "Nothing is promised: set FIELDQ_PROMISES to a promises file (docs/promises.md, docs/promises.example.yaml).";

type FleetDay = {
  day: number;
  /** Per model, the devices with activity that day. */
  online: Map<string, Set<string>>;
  sums: Map<string, { hours: number; faults: Record<Severity, number> }>;
};

export function createPromiseService(bag: ServiceBag, options: PromiseServiceOptions): PromiseService {
  let promises: ServicePromise[] = [];
  // The alert engine asks every cycle: the days are computed again only when a bucket's rollup changed.
  const fleetDays = answers<FleetDay[]>(20);

  async function report(input: PromisesInput, asOfMs: number): Promise<PromisesAnswer> {
    const chosen = promises.filter((p) => input.model === undefined || p.model === input.model);
    const base = {
      from: iso(input.fromMs),
      to: iso(input.toMs),
      asOf: iso(asOfMs),
      file: options.file ?? null,
    };
    if (chosen.length === 0) {
      const message =
        options.file === undefined
          ? NOTHING_PROMISED
          : `Nothing is promised${input.model === undefined ? "" : ` for ${input.model}`} in ${options.file}.`;
      return { ...base, message, models: [] };
    }
    const periodStart = floorDay(asOfMs) - Math.max(...chosen.map((p) => p.periodDays)) * DAY_MS;
    const evaluated: Window = { fromMs: Math.min(floorDay(input.fromMs), periodStart), toMs: input.toMs };
    const days = dayStarts(evaluated);
    const firstDay = days[0] ?? evaluated.fromMs;
    const complete = (day: number) => day + DAY_MS <= asOfMs;

    const [fleet, issues] = await Promise.all([
      chosen.some((p) => p.kind !== "response")
        ? readFleet(evaluated, Math.max(0, ...lookbacks(chosen)), asOfMs)
        : undefined,
      chosen.some((p) => p.kind === "response") ? readNewIssues(evaluated.fromMs, asOfMs) : undefined,
    ]);

    const reports: PromiseReport[] = chosen.map((p) => {
      let verdicts: DayVerdict[];
      if (p.kind === "availability") {
        const online = (fleet?.days ?? [])
          .filter((d) => d.day >= firstDay - p.lookbackDays * DAY_MS)
          .map((d) => ({
            day: d.day,
            devices: d.online.get(p.model) ?? new Set<string>(),
            complete: complete(d.day),
          }));
        verdicts = availabilityDays(p, online);
      } else if (p.kind === "fault_rate") {
        const severity = p.severity;
        const sums = (fleet?.days ?? [])
          .filter((d) => d.day >= firstDay)
          .map((d) => {
            const s = d.sums.get(p.model);
            return {
              day: d.day,
              deviceHours: s?.hours ?? 0,
              faults: s?.faults[severity] ?? 0,
              complete: complete(d.day),
            };
          });
        verdicts = faultRateDays(p, sums);
      } else {
        const severity = p.severity;
        const mine = (issues ?? []).filter((i) => i.models.has(p.model) && atLeast(i.severity, severity));
        verdicts = responseDays(p, days, mine, asOfMs);
      }
      const judged = judgePromise(p, verdicts, asOfMs);
      const shown = verdicts.filter((v) => v.day + DAY_MS > input.fromMs && v.day < input.toMs);
      return {
        model: p.model,
        name: p.name,
        kind: p.kind,
        severity: p.kind === "availability" ? null : p.severity,
        summary: describePromise(p),
        target: p.target,
        objective: p.objective,
        periodDays: p.periodDays,
        period: { from: iso(judged.period.fromMs), to: iso(judged.period.toMs) },
        judgedDays: judged.judgedDays,
        compliance: judged.compliance,
        budget: judged.budget,
        burnRate: judged.burnRate,
        status: judged.status,
        reason: judged.reason,
        days: shown.map(dayRow),
      };
    });
    const models = [...new Set(reports.map((r) => r.model))].map((model) => ({
      model,
      promises: reports.filter((r) => r.model === model),
    }));
    return { ...base, message: null, models };
  }

  /**
   * Per UTC day from lookback days before the window to its end: each model's devices with activity
   * (the "active" device sets) and its exposure and faults by severity (cohort_1h/1d), up to asOf.
   */
  async function readFleet(window: Window, lookbackDays: number, asOfMs: number) {
    const loaded = alignHours({
      fromMs: window.fromMs - lookbackDays * DAY_MS,
      toMs: Math.max(window.fromMs + 1, Math.min(window.toMs, asOfMs)),
    });
    const parts = dayStarts(loaded).map((day) => ({ day, part: dayPart(day, loaded) }));
    const query = cohortSumsQuery();
    const view = await bag.rollups.load(
      parts.map((d) => d.part),
      [query],
      { sets: ["active"] },
    );
    const days = fleetDays(JSON.stringify(loaded), view.version, () =>
      parts.map(({ day, part }): FleetDay => {
        const online = new Map<string, Set<string>>();
        for (const [device, identity] of view.members("active", part)) {
          const set = online.get(identity.model) ?? new Set<string>();
          online.set(identity.model, set);
          set.add(device);
        }
        const sums = new Map<string, { hours: number; faults: Record<Severity, number> }>();
        for (const row of cohortSumRows(view.sums(query, part))) {
          const model = row.tags.model ?? "";
          const s = sums.get(model) ?? { hours: 0, faults: { info: 0, warning: 0, error: 0, critical: 0 } };
          sums.set(model, s);
          s.hours += row.sums.hours;
          for (const severity of SEVERITIES) s.faults[severity] += row.sums.faults[severity];
        }
        return { day, online, sums };
      }),
    );
    return { days };
  }

  /** Issues first seen from fromMs on, with their models, worst severity so far and first answer by a person. */
  async function readNewIssues(fromMs: number, asOfMs: number) {
    const window = alignHours({ fromMs, toMs: Math.max(fromMs + 1, asOfMs) });
    const [page, events] = await Promise.all([
      bag.issues.list({ ...window, sort: "devices", limit: Number.MAX_SAFE_INTEGER, offset: 0 }),
      bag.issues.events(),
    ]);
    const answered = new Map<string, number>();
    for (const { issue, event } of events) {
      if (event.type !== "transition" || event.actor === "system" || event.at > asOfMs) continue;
      const known = answered.get(issue);
      if (known === undefined || event.at < known) answered.set(issue, event.at);
    }
    const found: Array<NewIssue & { models: Set<string>; severity: Severity | null }> = [];
    for (const s of page.items) {
      const firstSeenMs = Date.parse(s.firstSeen);
      if (firstSeenMs < fromMs) continue;
      found.push({
        id: s.id,
        firstSeenMs,
        answeredMs: answered.get(s.id) ?? null,
        models: new Set([s.model, ...s.models.map((m) => m.slice(m.indexOf("/") + 1))]),
        severity: s.worstSeverity,
      });
    }
    return found;
  }

  return {
    async load() {
      if (options.file === undefined) {
        promises = [];
        return ok(undefined);
      }
      const read = await loadYamlFile(PromisesFile, options.file, "(promises)");
      if (!read.ok) return err(read.errors.map((e) => e.text).join("\n"));
      promises = promisesOf(read.value);
      bag.logger.info({ file: options.file, promises: promises.length }, "service promises read");
      return ok(undefined);
    },
    promised: () => promises,
    report: (input) => report(input, Math.min(input.toMs, bag.now())),
    async status(nowMs) {
      if (promises.length === 0) return [];
      const answer = await report({ fromMs: floorDay(nowMs) - DAY_MS, toMs: nowMs }, nowMs);
      return answer.models.flatMap(({ promises: reports }) =>
        reports
          .filter((r) => r.status === "breached" || r.status === "burning")
          .map((r) => ({
            model: r.model,
            promise: r.name,
            kind: r.kind,
            state: r.status === "breached" ? ("breached" as const) : ("burning" as const),
            detail: r.reason,
            budgetLeftDays: r.budget.leftDays,
            burnRate: r.burnRate.long.rate,
          })),
      );
    },
  };
}

const lookbacks = (list: readonly ServicePromise[]) =>
  list.flatMap((p) => (p.kind === "availability" ? [p.lookbackDays] : []));

const atLeast = (severity: Severity | null, floor: Severity) =>
  severity !== null && SEVERITIES.indexOf(severity) >= SEVERITIES.indexOf(floor);
