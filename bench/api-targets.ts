import { DAY_MS, iso, WEEK_MS } from "../contract/time.js";

// What bench:api asks the API: every support and quality read of issue 10 (item 5), with real ids taken
// from the data set. Pure but for the one function that looks the ids up.

export type Target = { name: string; path: string; method: "GET" };

/** Real ids from the data: a device with faults, its serial, the largest issue by devices. */
export type TargetIds = { device: string; serial: string; issue: string };

export type TargetOptions = { devices: number; days: number; endMs: number; ids: TargetIds };

/** The compared cohorts and filters: fleet-history.ts's lines, where FQ-Modem 7590 on 7.57 has a hot spot. */
export const PICKS = {
  kind: "printer",
  model: "FQ-Modem 7590",
  firmware: "7.57",
  baseline: "7.31",
  code: "DSL_RESYNC",
  metric: "snr_margin_db",
  /** A model as free text: the search that matches most. */
  searchModel: "Print Mini",
} as const;

const qs = (params: Record<string, string | number>) =>
  new URLSearchParams(Object.entries(params).map(([k, v]): [string, string] => [k, String(v)])).toString();

/** A part of a serial a support agent might type: six characters from its middle, in lower case. */
export const serialPart = (serial: string) => {
  const dash = serial.indexOf("-");
  const start = dash >= 0 && serial.length >= dash + 8 ? dash + 2 : 0;
  return serial.slice(start, start + 6).toLowerCase();
};

export function targets({ devices, days, endMs, ids }: TargetOptions): Target[] {
  const window = { from: iso(endMs - days * DAY_MS), to: iso(endMs) };
  const week = { from: iso(endMs - WEEK_MS), to: iso(endMs) };
  const device = encodeURIComponent(ids.device);
  const list: Array<[string, string]> = [
    ["devices", "/api/v1/devices"],
    ["devices kind", `/api/v1/devices?${qs({ kind: PICKS.kind })}`],
    ["devices model", `/api/v1/devices?${qs({ model: PICKS.model })}`],
    ["devices firmware", `/api/v1/devices?${qs({ firmware: PICKS.firmware })}`],
    ["devices silent", "/api/v1/devices?status=silent"],
    ["devices page", `/api/v1/devices?${qs({ offset: Math.floor(devices / 2) })}`],
    ["search part", `/api/v1/devices?${qs({ q: serialPart(ids.serial) })}`],
    ["search serial", `/api/v1/devices?${qs({ serial: ids.serial })}`],
    ["search id", `/api/v1/devices?${qs({ q: ids.device })}`],
    ["search model", `/api/v1/devices?${qs({ q: PICKS.searchModel })}`],
    ["device", `/api/v1/devices/${device}`],
    ["summary", `/api/v1/devices/${device}/summary`],
    ["summary 404", "/api/v1/devices/no-such-device/summary"],
    ["presence", `/api/v1/devices/${device}/presence`],
    ["telemetry week", `/api/v1/devices/${device}/telemetry?${qs({ metric: PICKS.metric, ...week })}`],
    ["faults", `/api/v1/faults?${qs(window)}`],
    ["faults device", `/api/v1/faults?${qs({ ...window, device: ids.device })}`],
    ["faults model", `/api/v1/faults?${qs({ ...window, model: PICKS.model })}`],
    ["faults code", `/api/v1/faults?${qs({ ...window, code: PICKS.code })}`],
    ["issues", `/api/v1/issues?${qs({ ...window, sort: "devices" })}`],
    ["issue largest", `/api/v1/issues/${encodeURIComponent(ids.issue)}?${qs(window)}`],
    [
      "issue devices p2",
      `/api/v1/issues/${encodeURIComponent(ids.issue)}?${qs({ ...window, devicesOffset: 100, devicesLimit: 100 })}`,
    ],
    ["fleet summary", `/api/v1/fleet/summary?${qs({ ...window, groupBy: "model" })}`],
    ["fleet trend", `/api/v1/fleet/trend?${qs(window)}`],
    ["firmware", `/api/v1/firmware?${qs(window)}`],
    [
      "firmware compare",
      `/api/v1/firmware/compare?${qs({ model: PICKS.model, baseline: PICKS.baseline, candidate: PICKS.firmware, ...window })}`,
    ],
    ["silence", "/api/v1/silence"],
  ];
  return list.map(([name, path]) => ({ name, path, method: "GET" }));
}

/** The JSON line's key for a target. */
export const targetKey = (target: Target) => `${target.method} ${target.path}`;

export type Get = (path: string) => Promise<{ status: number; body: unknown }>;

/** The value at a path of a JSON answer, or undefined. */
export const field = (value: unknown, ...path: string[]): unknown => {
  let at = value;
  for (const key of path) {
    if (typeof at !== "object" || at === null) return undefined;
    at = (at as Record<string, unknown>)[key];
  }
  return at;
};
const firstItem = (body: unknown) => (field(body, "items") as unknown[] | undefined)?.[0];

/**
 * Looks the ids up through the API itself (on an app made for this only, so the measured one starts cold):
 * the largest issue by devices, a device among its faults, that device's serial.
 */
export async function findIds(get: Get, options: Omit<TargetOptions, "ids">): Promise<TargetIds> {
  const window = { from: iso(options.endMs - options.days * DAY_MS), to: iso(options.endMs) };
  const issues = await get(`/api/v1/issues?${qs({ ...window, sort: "devices", limit: 1 })}`);
  const issue = field(firstItem(issues.body), "id");
  const faults = await get(
    `/api/v1/faults?${qs({ ...window, model: PICKS.model, code: PICKS.code, limit: 1 })}`,
  );
  const device = field(firstItem(faults.body), "device");
  if (typeof issue !== "string" || typeof device !== "string")
    throw new Error(
      `no issue or faulty device found (issues HTTP ${issues.status}, faults HTTP ${faults.status})`,
    );
  const detail = await get(`/api/v1/devices/${encodeURIComponent(device)}`);
  const serial = field(detail.body, "serial");
  if (typeof serial !== "string") throw new Error(`device ${device} has no serial (HTTP ${detail.status})`);
  return { device, serial, issue };
}
