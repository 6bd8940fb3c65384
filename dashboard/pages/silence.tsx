import type { SilenceReport } from "../../contract/api/devices.js";
import { Kpis, Panel, TableWrap, When } from "../components.js";
import { count, duration, percent } from "../format.js";
import { render } from "../layout.js";
import { load } from "../load.js";
import type { PageHandler } from "../page.js";
import { DeviceTable, filtersOf } from "./devices.js";

// Silent devices: which have stopped reporting, since when, and those that went silent within a day of a
// firmware update (the quality engineer's first suspect). Judged now; every device links to its page.

const PAGE_SIZE = 50;

export const silencePage: PageHandler = async (c, deps) => {
  const session = c.get("session");
  const offset = filtersOf((name) => c.req.query(name)).offset;
  const [report, silent] = await Promise.all([
    load(session.api.api.v1.silence.$get({ query: {} })),
    load(
      session.api.api.v1.devices.$get({
        query: { status: "silent", limit: String(PAGE_SIZE), offset: String(offset) },
      }),
    ),
  ]);
  const filters = { offset };
  return render(c, deps.assets, {
    title: "Silence",
    section: "silence",
    children: (
      <div class="panels silence-page">
        <Panel
          title="Silent now"
          live="silence-kpis"
          wide
          loaded={report}
          empty=""
          render={(r) => <SilenceKpis report={r} />}
        />
        <Panel
          title="Silent after a firmware update"
          live="silence-after-update"
          wide
          loaded={report}
          isEmpty={(r) => r.afterUpdate.devices.length === 0}
          empty="No device went silent within 24 h of a firmware update."
          render={(r) => <AfterUpdateTable report={r} />}
        />
        <Panel
          title="Silent devices"
          live="silence-devices"
          wide
          loaded={silent}
          isEmpty={(p) => p.items.length === 0}
          empty="No device is silent: every device that reported is online or cleanly offline."
          render={(p) => (
            <>
              <p class="note">
                Silent: nothing received for more than {report.ok ? report.data.factor : 3} × the device's
                report interval. "Last report" is when it went quiet, on its own clock.
              </p>
              <DeviceTable page={p} filters={filters} base="/silence" quietAtMs={deps.now()} />
            </>
          )}
        />
        <Panel
          title="Silent share by model and firmware"
          live="silence-rates"
          wide
          loaded={report}
          isEmpty={(r) => r.byFirmware.length === 0}
          empty="No device reported in the last 7 days."
          render={(r) => <RateTable report={r} />}
        />
      </div>
    ),
  });
};

function SilenceKpis(props: { report: SilenceReport }) {
  const r = props.report;
  const seen = r.byModel.reduce((sum, m) => sum + m.seen, 0);
  const silent = r.byModel.reduce((sum, m) => sum + m.silent, 0);
  const worst = [...r.byModel].sort((a, b) => b.rate - a.rate)[0];
  return (
    <Kpis
      items={[
        { label: "Silent devices", value: count(silent), note: `of ${count(seen)} that reported in 7 days` },
        { label: "Silent share", value: percent(seen === 0 ? null : silent / seen) },
        {
          label: "After an update",
          value: count(r.afterUpdate.devices.length),
          note: "silent within 24 h of updating",
        },
        {
          label: "Worst model",
          value: worst === undefined || worst.silent === 0 ? "–" : worst.model,
          note: worst === undefined || worst.silent === 0 ? undefined : `${percent(worst.rate)} silent`,
        },
      ]}
    />
  );
}

function AfterUpdateTable(props: { report: SilenceReport }) {
  const { afterUpdate } = props.report;
  return (
    <>
      <ul class="silence-counts">
        {afterUpdate.byFirmware.map((f) => (
          <li>
            {f.model} → {f.firmware}: <strong>{count(f.count)}</strong> silent
          </li>
        ))}
      </ul>
      <TableWrap label="Devices silent after an update">
        <table class="devices-table">
          <thead>
            <tr>
              <th scope="col">Device</th>
              <th scope="col">Model</th>
              <th scope="col">Update</th>
              <th scope="col">Updated</th>
              <th scope="col">Last report</th>
              <th scope="col">Quiet after</th>
            </tr>
          </thead>
          <tbody>
            {afterUpdate.devices.map((d) => (
              <tr>
                <th scope="row">
                  <a href={`/devices/${encodeURIComponent(d.device)}`}>{d.device}</a>
                </th>
                <td>{d.model}</td>
                <td>
                  {d.from} → {d.to}
                </td>
                <td>
                  <When iso={d.updatedAt} />
                </td>
                <td>
                  <When iso={d.lastReport} />
                </td>
                <td>{duration(Math.max(0, Date.parse(d.lastReport) - Date.parse(d.updatedAt)))}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </TableWrap>
    </>
  );
}

function RateTable(props: { report: SilenceReport }) {
  return (
    <TableWrap label="Silent share by model and firmware">
      <table>
        <thead>
          <tr>
            <th scope="col">Model</th>
            <th scope="col">Firmware</th>
            <th scope="col" class="num">
              Reported
            </th>
            <th scope="col" class="num">
              Silent
            </th>
            <th scope="col" class="num">
              Share
            </th>
          </tr>
        </thead>
        <tbody>
          {[...props.report.byFirmware]
            .sort((a, b) => b.rate - a.rate || a.model.localeCompare(b.model))
            .map((f) => (
              <tr>
                <th scope="row">
                  <a href={`/devices?model=${encodeURIComponent(f.model)}&status=silent`}>{f.model}</a>
                </th>
                <td>{f.firmware}</td>
                <td class="num">{count(f.seen)}</td>
                <td class="num">{count(f.silent)}</td>
                <td class="num">{percent(f.rate)}</td>
              </tr>
            ))}
        </tbody>
      </table>
    </TableWrap>
  );
}
