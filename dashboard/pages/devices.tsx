import type { Device, DevicePage } from "../../contract/api/devices.js";
import { Panel, Status, TableWrap, When } from "../components.js";
import { count, duration } from "../format.js";
import { render } from "../layout.js";
import { type Loaded, load } from "../load.js";
import type { PageHandler } from "../page.js";
import { LIVE_HEADER } from "../session.js";

// The device search: the support agent types the serial from the sticker (or part of it). One match goes
// straight to the device; several make a table; none says what was searched. Filters and page in the URL.

const PAGE_SIZE = 50;

const STATUSES = ["online", "offline", "silent"] as const;
type StatusFilter = (typeof STATUSES)[number];

export type DeviceFilters = { q?: string; status?: StatusFilter; model?: string; offset: number };

/** The page's filters from its query; anything the API would refuse is dropped, not an error page. */
export function filtersOf(query: (name: string) => string | undefined): DeviceFilters {
  const q = query("q")?.trim().slice(0, 128);
  const status = query("status");
  const model = query("model")?.trim();
  const offset = Number.parseInt(query("offset") ?? "0", 10);
  return {
    ...(q ? { q } : {}),
    ...(STATUSES.includes(status as StatusFilter) ? { status: status as StatusFilter } : {}),
    ...(model ? { model } : {}),
    offset: Number.isFinite(offset) && offset > 0 ? offset : 0,
  };
}

/** This page's URL for the filters (and an offset): what a link to a page of results says. */
export function devicesHref(filters: DeviceFilters, offset = filters.offset, base = "/devices"): string {
  const params = new URLSearchParams();
  if (filters.q !== undefined) params.set("q", filters.q);
  if (filters.status !== undefined) params.set("status", filters.status);
  if (filters.model !== undefined) params.set("model", filters.model);
  if (offset > 0) params.set("offset", String(offset));
  const text = params.toString();
  return text === "" ? base : `${base}?${text}`;
}

export const devicesPage: PageHandler = async (c, deps) => {
  const session = c.get("session");
  const filters = filtersOf((name) => c.req.query(name));
  const [list, silence] = await Promise.all([
    load(
      session.api.api.v1.devices.$get({
        query: {
          ...(filters.q === undefined ? {} : { q: filters.q }),
          ...(filters.status === undefined ? {} : { status: filters.status }),
          ...(filters.model === undefined ? {} : { model: filters.model }),
          limit: String(PAGE_SIZE),
          offset: String(filters.offset),
        },
      }),
    ),
    // The models the fleet has (from the directory when judged now): the model filter's choices.
    load(session.api.api.v1.silence.$get({ query: {} })),
  ]);
  // One match for a search: the agent wants the device, not a table of one (a live refresh keeps the table).
  const live = c.req.header(LIVE_HEADER) !== undefined;
  const only = list.ok && list.data.total === 1 && filters.offset === 0 ? list.data.items[0] : undefined;
  if (filters.q !== undefined && only !== undefined && !live) {
    return c.redirect(`/devices/${encodeURIComponent(only.id)}`, 303);
  }
  const models = silence.ok ? silence.data.byModel.map((m) => m.model) : [];
  if (filters.model !== undefined && !models.includes(filters.model)) models.push(filters.model);
  return render(c, deps.assets, {
    title: "Devices",
    section: "devices",
    children: (
      <>
        <DeviceFilterForm filters={filters} models={models.sort()} />
        <Panel
          title={resultTitle(filters, list)}
          live="devices"
          wide
          loaded={list}
          isEmpty={(page) => page.items.length === 0}
          empty={emptyText(filters)}
          render={(page) => <DeviceTable page={page} filters={filters} />}
        />
      </>
    ),
  });
};

function resultTitle(filters: DeviceFilters, list: Loaded<DevicePage>): string {
  const what = filters.q === undefined ? "Devices" : `Devices matching “${filters.q}”`;
  return list.ok ? `${what} (${count(list.data.total)})` : what;
}

/** Says what was searched, so a typo in the serial is seen at once. */
export function emptyText(filters: DeviceFilters): string {
  const parts: string[] = [];
  if (filters.q !== undefined) parts.push(`whose id, serial or model contains “${filters.q}”`);
  if (filters.model !== undefined) parts.push(`of model ${filters.model}`);
  if (filters.status !== undefined) parts.push(`that are ${filters.status}`);
  if (parts.length === 0) return "No device has reported yet.";
  return `No device ${parts.join(", ")}. Check the serial on the label (letters and digits, any part of it) or clear a filter.`;
}

function DeviceFilterForm(props: { filters: DeviceFilters; models: string[] }) {
  const { filters } = props;
  return (
    <search>
      <form class="filters device-filters" method="get" action="/devices">
        <div class="field">
          <label for="devices-q">Serial, id or text</label>
          <input
            id="devices-q"
            name="q"
            type="search"
            value={filters.q ?? ""}
            autocomplete="off"
            spellcheck={false}
            maxlength={128}
          />
        </div>
        <div class="field">
          <label for="devices-status">Status</label>
          <select id="devices-status" name="status">
            <option value="">Any</option>
            {STATUSES.map((s) => (
              <option value={s} selected={filters.status === s}>
                {s}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="devices-model">Model</label>
          <select id="devices-model" name="model">
            <option value="">Any</option>
            {props.models.map((m) => (
              <option value={m} selected={filters.model === m}>
                {m}
              </option>
            ))}
          </select>
        </div>
        <button type="submit">Show devices</button>
        {filters.q === undefined && filters.status === undefined && filters.model === undefined ? null : (
          <a href="/devices">Clear</a>
        )}
      </form>
    </search>
  );
}

/** A page of devices with links to the pages before and after it (on `base`, this page's path). */
export function DeviceTable(props: {
  page: DevicePage;
  filters: DeviceFilters;
  base?: string;
  /** Adds how long each device has been quiet (since its last report) as of this instant. */
  quietAtMs?: number;
}) {
  const { page, filters } = props;
  const base = props.base ?? "/devices";
  const first = page.offset + 1;
  const last = page.offset + page.items.length;
  return (
    <>
      <TableWrap label="Devices">
        <table class="devices-table">
          <thead>
            <tr>
              <th scope="col">Device</th>
              <th scope="col">Serial</th>
              <th scope="col">Model</th>
              <th scope="col">Firmware</th>
              <th scope="col">Region</th>
              <th scope="col">ISP</th>
              <th scope="col">Status</th>
              <th scope="col">Last report</th>
              {props.quietAtMs === undefined ? null : <th scope="col">Quiet for</th>}
            </tr>
          </thead>
          <tbody>
            {page.items.map((d) => (
              <DeviceRow device={d} quietAtMs={props.quietAtMs} />
            ))}
          </tbody>
        </table>
      </TableWrap>
      <nav class="pager" aria-label="Pages of devices">
        <span>
          {count(first)}–{count(last)} of {count(page.total)}
        </span>
        {page.offset > 0 ? (
          <a href={devicesHref(filters, Math.max(0, page.offset - page.limit), base)} rel="prev">
            Previous page
          </a>
        ) : null}
        {page.nextOffset === null ? null : (
          <a href={devicesHref(filters, page.nextOffset, base)} rel="next">
            Next page
          </a>
        )}
      </nav>
    </>
  );
}

function DeviceRow(props: { device: Device; quietAtMs: number | undefined }) {
  const d = props.device;
  return (
    <tr>
      <th scope="row">
        <a href={`/devices/${encodeURIComponent(d.id)}`}>{d.id}</a>
      </th>
      <td class="mono">{d.serial ?? "–"}</td>
      <td>{d.model}</td>
      <td>{d.firmware}</td>
      <td>{d.region}</td>
      <td>{d.isp ?? "–"}</td>
      <td>
        <Status status={d.status} />
      </td>
      <td>
        <When iso={d.lastReport} />
      </td>
      {props.quietAtMs === undefined ? null : (
        <td>
          {d.lastReport === null ? "–" : duration(Math.max(0, props.quietAtMs - Date.parse(d.lastReport)))}
        </td>
      )}
    </tr>
  );
}
