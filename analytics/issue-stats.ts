import {
  type BreakdownName,
  CONCENTRATION_SHARES,
  type Concentration,
  type DeviceIssue,
  type IssueHistoryEntry,
  type IssueSort,
  type IssueSummary,
} from "../contract/api/issues.js";
import { SEVERITIES, type Severity, UNKNOWN } from "../contract/messages.js";
import { HOUR_MS, iso, type Window } from "../contract/time.js";
import { type IssueState, reliesOnFix } from "./lifecycle.js";
import { isAtLeast } from "./versions.js";

// The issue statistics as rules on rows: tallies of occurrences per fingerprint and issue, the worst
// severity, the summary of an issue, filtering, sorting and paging the list, breakdowns, the affected
// devices' order, and what the support desk is told about a device's issues. services/issues.ts feeds them
// rows read from the rollups.

/** One fingerprint as the "fingerprint" rollup holds it: first and last occurrence over all time. */
export type FingerprintMeta = {
  id: string;
  key: string;
  kind: string;
  model: string;
  firstMs: number;
  lastMs: number;
};

/** Faults of one fingerprint on one firmware, severity and code, in one half of the window. */
export type CountRow = {
  fingerprint: string;
  firmware: string;
  severity: string;
  code: string;
  n: number;
  half: 0 | 1;
};

/** Occurrences of one fingerprint, or of one issue, in the window. */
export type Tally = {
  occurrences: number;
  halves: [number, number];
  severities: Set<string>;
  codes: Set<string>;
  firmwares: Set<string>;
};

export const emptyTally = (): Tally => ({
  occurrences: 0,
  halves: [0, 0],
  severities: new Set(),
  codes: new Set(),
  firmwares: new Set(),
});

export const modelKey = (kind: string, model: string) => `${kind}/${model}`;

/** The two halves of an hour-aligned window, split at a whole hour (an odd hour goes to the first). */
export function halvesOf(window: Window): Window[] {
  const middle = window.fromMs + Math.ceil((window.toMs - window.fromMs) / HOUR_MS / 2) * HOUR_MS;
  return [
    { fromMs: window.fromMs, toMs: middle },
    { fromMs: middle, toMs: window.toMs },
  ].filter((w) => w.fromMs < w.toMs);
}

/** Per fingerprint (all, or those `wanted`), its rows added up. */
export function tallies(rows: Iterable<CountRow>, wanted?: ReadonlySet<string>): Map<string, Tally> {
  const result = new Map<string, Tally>();
  for (const row of rows) {
    if (row.fingerprint === "" || row.n === 0 || wanted?.has(row.fingerprint) === false) continue;
    const tally = result.get(row.fingerprint) ?? emptyTally();
    result.set(row.fingerprint, tally);
    tally.occurrences += row.n;
    tally.halves[row.half] += row.n;
    tally.severities.add(row.severity);
    tally.codes.add(row.code);
    tally.firmwares.add(row.firmware);
  }
  return result;
}

/** The fingerprints' tallies added up per issue; issueOf leaves a fingerprint out with undefined. */
export function fold(
  byFingerprint: ReadonlyMap<string, Tally>,
  issueOf: (fingerprint: string) => string | undefined,
): Map<string, Tally> {
  const result = new Map<string, Tally>();
  for (const [fingerprint, t] of byFingerprint) {
    const id = issueOf(fingerprint);
    if (id === undefined) continue;
    const tally = result.get(id) ?? emptyTally();
    result.set(id, tally);
    tally.occurrences += t.occurrences;
    tally.halves[0] += t.halves[0];
    tally.halves[1] += t.halves[1];
    for (const s of t.severities) tally.severities.add(s);
    for (const c of t.codes) tally.codes.add(c);
    for (const f of t.firmwares) tally.firmwares.add(f);
  }
  return result;
}

const SEVERITY_RANK = new Map<string, number>(SEVERITIES.map((s, i) => [s, i]));

/** The worst known severity, or null when none is known. */
export function worstSeverity(severities: Iterable<string>): Severity | null {
  let rank = -1;
  for (const s of severities) rank = Math.max(rank, SEVERITY_RANK.get(s) ?? -1);
  return SEVERITIES[rank] ?? null;
}

/** Everything an issue's summary is made of. */
export type IssueFacts = {
  id: string;
  /** Its fingerprints after merges: its own and those merged into it. */
  members: readonly FingerprintMeta[];
  tally: Tally;
  /** Distinct devices with a fault of any member in the window. */
  affected: number;
  state: IssueState;
};

/** activeByModel: distinct active devices in the window per "kind/model". */
export function summarize(issue: IssueFacts, activeByModel: ReadonlyMap<string, number>): IssueSummary {
  const { id, members, tally, affected, state } = issue;
  const primary = members.find((m) => m.id === id) ?? members[0];
  const models = [...new Set(members.map((m) => modelKey(m.kind, m.model)))].sort();
  const active = models.reduce((sum, m) => sum + (activeByModel.get(m) ?? 0), 0);
  return {
    id,
    key: primary?.key ?? id,
    kind: primary?.kind ?? UNKNOWN,
    model: primary?.model ?? UNKNOWN,
    models,
    codes: [...tally.codes].sort(),
    mergedIds: members
      .map((m) => m.id)
      .filter((m) => m !== id)
      .sort(),
    status: state.status,
    assignee: state.assignee,
    fixVersion: state.fixVersion,
    firstSeen: iso(Math.min(...members.map((m) => m.firstMs))),
    lastSeen: iso(Math.max(...members.map((m) => m.lastMs))),
    occurrences: tally.occurrences,
    affectedDevices: affected,
    activeDevices: active,
    fleetShare: active > 0 ? affected / active : null,
    worstSeverity: worstSeverity(tally.severities),
    growth: {
      firstHalf: tally.halves[0],
      secondHalf: tally.halves[1],
      delta: tally.halves[1] - tally.halves[0],
    },
  };
}

export type IssueFilter = {
  kind?: string | undefined;
  model?: string | undefined;
  firmware?: string | undefined;
  status?: IssueState["status"] | undefined;
  /** The worst severity in the window is at least this. */
  severity?: Severity | undefined;
};

/** Whether an issue is listed under the filter: any member's kind and model, any occurrence's firmware. */
export function matches(issue: IssueFacts, filter: IssueFilter): boolean {
  const { members, tally, state } = issue;
  if (members.length === 0) return false;
  if (filter.kind !== undefined && !members.some((m) => m.kind === filter.kind)) return false;
  if (filter.model !== undefined && !members.some((m) => m.model === filter.model)) return false;
  if (filter.firmware !== undefined && !tally.firmwares.has(filter.firmware)) return false;
  if (filter.status !== undefined && state.status !== filter.status) return false;
  if (filter.severity !== undefined) {
    const worst = worstSeverity(tally.severities);
    if (worst === null || (SEVERITY_RANK.get(worst) ?? -1) < (SEVERITY_RANK.get(filter.severity) ?? 0))
      return false;
  }
  return true;
}

const SORT_KEYS: Record<IssueSort, (s: IssueSummary) => number> = {
  devices: (s) => s.affectedDevices,
  occurrences: (s) => s.occurrences,
  last_seen: (s) => Date.parse(s.lastSeen),
  growth: (s) => s.growth.delta,
};

const byId = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Descending by the sort key, then by id, so pages are stable. */
export function sortSummaries(items: readonly IssueSummary[], sort: IssueSort): IssueSummary[] {
  const key = SORT_KEYS[sort];
  return [...items].sort((a, b) => key(b) - key(a) || byId(a.id, b.id));
}

export type Page<T> = { items: T[]; total: number; nextOffset: number | null };

export function pageOf<T>(items: readonly T[], offset: number, limit: number): Page<T> {
  const page = items.slice(offset, offset + limit);
  const end = offset + page.length;
  return { items: page, total: items.length, nextOffset: end < items.length ? end : null };
}

/** Occurrences and distinct devices per firmware, region, ISP or hardware, most devices first. */
export function breakdown<K extends BreakdownName>(
  name: K,
  occurrences: ReadonlyMap<string, number>,
  devices: ReadonlyMap<string, number>,
): Array<Record<K, string> & { occurrences: number; affectedDevices: number }> {
  const keys = new Set([...occurrences.keys(), ...devices.keys()]);
  return [...keys]
    .map((value) => ({
      value,
      occurrences: occurrences.get(value) ?? 0,
      affectedDevices: devices.get(value) ?? 0,
    }))
    .filter((e) => e.occurrences > 0 || e.affectedDevices > 0)
    .sort(
      (a, b) =>
        b.affectedDevices - a.affectedDevices || b.occurrences - a.occurrences || byId(a.value, b.value),
    )
    .map(
      ({ value, ...counts }) =>
        ({ [name]: value, ...counts }) as Record<K, string> & {
          occurrences: number;
          affectedDevices: number;
        },
    );
}

export type AffectedDevice = { device: string; n: number; lastMs: number; firmware: string };

/**
 * Occurrences and distinct devices per value of something each device has (its ISP, its hardware), from
 * the issue's per-device tallies: input for breakdown().
 */
export function byDeviceValue(
  devices: Iterable<{ device: string; n: number }>,
  valueFor: (device: string) => string,
): { occurrences: Map<string, number>; devices: Map<string, number> } {
  const occurrences = new Map<string, number>();
  const counted = new Map<string, number>();
  for (const d of devices) {
    if (d.n <= 0) continue;
    const value = valueFor(d.device);
    occurrences.set(value, (occurrences.get(value) ?? 0) + d.n);
    counted.set(value, (counted.get(value) ?? 0) + 1);
  }
  return { occurrences, devices: counted };
}

/**
 * How few devices give most of the occurrences: for each share, the fewest devices (most occurrences
 * first) whose occurrences reach it, and the device with the most.
 */
export function concentrationOf(
  devices: Iterable<{ device: string; n: number }>,
  shares: readonly number[] = CONCENTRATION_SHARES,
): Concentration {
  const ranked = [...devices].filter((d) => d.n > 0).sort((a, b) => b.n - a.n || byId(a.device, b.device));
  const total = ranked.reduce((sum, d) => sum + d.n, 0);
  const top = shares.map((share) => {
    let k = 0;
    let given = 0;
    // The tolerance keeps 0.8 × 35 = 28.000000000000004 from asking for one device more.
    while (k < ranked.length && given < share * total * (1 - 1e-12)) given += ranked[k++]?.n ?? 0;
    return { share, devices: k, occurrences: given };
  });
  const first = ranked[0];
  return {
    devices: ranked.length,
    occurrences: total,
    top,
    topDevice:
      first === undefined ? null : { id: first.device, occurrences: first.n, share: first.n / total },
  };
}

/** The affected devices as the detail lists them: most occurrences first, then the latest, then by id. */
export function rankDevices(devices: Iterable<AffectedDevice>): AffectedDevice[] {
  return [...devices]
    .filter((d) => d.n > 0)
    .sort((a, b) => b.n - a.n || b.lastMs - a.lastMs || byId(a.device, b.device));
}

/** The issue's events and those of the issues merged into it, in time order. */
export function historyOf(
  id: string,
  state: IssueState,
  entries: readonly IssueHistoryEntry[],
  members: ReadonlySet<string>,
): IssueHistoryEntry[] {
  return [
    ...state.history.map((event) => ({ issue: id, event })),
    ...entries.filter((e) => e.issue !== id && members.has(e.issue)),
  ].sort((a, b) => a.event.at - b.event.at);
}

/**
 * What the support desk is told about an issue a device had: open issues are listed; one fixed in a
 * firmware the device does not run yet comes with the advice to update; others (closed, muted, or fixed in
 * what it runs) are left out.
 */
export function deviceIssue(
  issue: { id: string; key: string | null; state: IssueState },
  deviceFirmware: string | null,
): DeviceIssue | undefined {
  const { state } = issue;
  const fixAhead =
    state.fixVersion !== null &&
    deviceFirmware !== null &&
    reliesOnFix(state) &&
    !isAtLeast(deviceFirmware, state.fixVersion);
  const open = state.status !== "closed" && state.status !== "muted";
  if (!open && !fixAhead) return undefined;
  return {
    id: issue.id,
    key: issue.key,
    status: state.status,
    fixVersion: state.fixVersion,
    advice: fixAhead ? `fixed in firmware ${state.fixVersion}: advise the update` : null,
  };
}
