import type { IssueEvent } from "../contract/issue-events.js";
import { resolveIssueId } from "./fingerprint.js";
import { replay } from "./lifecycle.js";

// The issue log read as a whole: events per issue, and the merges people made, which decide which
// fingerprints count towards which issue (resolved at read time, so a merge holds for later faults too).

export type LogEntry = { issue: string; event: IssueEvent };

export type IndexedLog = {
  byIssue: Map<string, IssueEvent[]>;
  /** Issue id → the issue it was merged into. */
  merges: Map<string, string>;
  entries: readonly LogEntry[];
};

export function indexLog(entries: readonly LogEntry[]): IndexedLog {
  const byIssue = new Map<string, IssueEvent[]>();
  for (const { issue, event } of entries) {
    const events = byIssue.get(issue);
    if (events === undefined) byIssue.set(issue, [event]);
    else events.push(event);
  }
  const merges = new Map<string, string>();
  for (const [issue, events] of byIssue) {
    const into = replay(events).mergedInto;
    if (into !== null) merges.set(issue, into);
  }
  return { byIssue, merges, entries };
}

/** The fingerprints (anything with an id) of each issue after merges, in the order given. */
export function membersByIssue<F extends { id: string }>(
  fingerprints: Iterable<F>,
  merges: ReadonlyMap<string, string>,
): Map<string, F[]> {
  const result = new Map<string, F[]>();
  for (const fingerprint of fingerprints) {
    const id = resolveIssueId(fingerprint.id, merges);
    const members = result.get(id);
    if (members === undefined) result.set(id, [fingerprint]);
    else members.push(fingerprint);
  }
  return result;
}
