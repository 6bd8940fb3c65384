import type { IssueListItem } from "../../contract/api/issues.js";

/** An issue as GET /api/v1/issues lists it: a Mk3 printer's E42 on 3 devices; fields overridden per test. */
export const issueListItem = (over: Partial<IssueListItem> = {}): IssueListItem => ({
  id: "issue-1",
  key: "printer/FQ-Print Mk3/E42",
  kind: "printer",
  model: "FQ-Print Mk3",
  models: ["printer/FQ-Print Mk3"],
  codes: ["E42"],
  mergedIds: [],
  status: "new",
  assignee: null,
  fixVersion: null,
  firstSeen: "2026-06-01T00:00:00.000Z",
  lastSeen: "2026-06-01T06:00:00.000Z",
  occurrences: 12,
  affectedDevices: 3,
  activeDevices: 30,
  fleetShare: 0.1,
  worstSeverity: "error",
  growth: { firstHalf: 4, secondHalf: 8, delta: 4 },
  ...over,
});
