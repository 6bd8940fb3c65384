import { DAY_MS, iso } from "../contract/time.js";
import { field, type Get, PICKS, serialPart } from "./api-targets.js";

// What bench:dashboard opens: every page of the dashboard, with real ids taken from the data through the API.

export type BenchPage = { name: string; path: string };

/** Real ids: the worst issue (most devices), a device with faults and its serial, a model to compare. */
export type PageIds = {
  issue: string;
  device: string;
  serial: string;
  compare: { model: string; baseline?: string; candidate?: string };
};

const items = (body: unknown) => (field(body, "items") as unknown[] | undefined) ?? [];

/**
 * Looks the ids up through the API: the worst issue, a device with a fault of bench:api's hot spot (else the
 * newest fault's device), and bench:api's compared pair when the data has it (else the page picks the model's
 * newest version against its predecessor).
 */
export async function findPageIds(get: Get, endMs: number, days: number): Promise<PageIds> {
  const window = new URLSearchParams({ from: iso(endMs - days * DAY_MS), to: iso(endMs) });
  const issues = await get(`/api/v1/issues?${window}&sort=devices&limit=1`);
  const issue = field(items(issues.body)[0], "id");
  const hot = await get(
    `/api/v1/faults?${window}&${new URLSearchParams({ model: PICKS.model, code: PICKS.code })}&limit=1`,
  );
  const fault = items(hot.body)[0] ?? items((await get(`/api/v1/faults?${window}&limit=1`)).body)[0];
  const device = field(fault, "device");
  if (typeof issue !== "string" || typeof device !== "string")
    throw new Error(`no issue or faulty device in the data (issues HTTP ${issues.status})`);
  const detail = await get(`/api/v1/devices/${encodeURIComponent(device)}`);
  const serial = field(detail.body, "serial");
  const model = field(detail.body, "model");
  if (typeof serial !== "string" || typeof model !== "string")
    throw new Error(`device ${device} has no serial or model (HTTP ${detail.status})`);
  const compare =
    model === PICKS.model
      ? { model, baseline: PICKS.baseline, candidate: PICKS.firmware }
      : { model: String(model) };
  return { issue, device, serial, compare };
}

export function benchPages(ids: PageIds): BenchPage[] {
  const firmware = new URLSearchParams({ model: ids.compare.model });
  if (ids.compare.baseline !== undefined && ids.compare.candidate !== undefined) {
    firmware.set("a", ids.compare.baseline);
    firmware.set("b", ids.compare.candidate);
  }
  return [
    { name: "overview", path: "/" },
    { name: "issues", path: "/issues" },
    { name: "issue (worst)", path: `/issues/${encodeURIComponent(ids.issue)}` },
    { name: "devices search", path: `/devices?${new URLSearchParams({ q: serialPart(ids.serial) })}` },
    { name: "device", path: `/devices/${encodeURIComponent(ids.device)}` },
    { name: "firmware compare", path: `/firmware?${firmware}` },
    { name: "silence", path: "/silence" },
  ];
}
