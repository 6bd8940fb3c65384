import type { AlertPage, AlertSummary, TargetDelivery } from "../../contract/api/alerts.js";
import { Badge, Panel, Severity, TableWrap, When } from "../components.js";
import { flash, render } from "../layout.js";
import { failureText, load } from "../load.js";
import type { PageHandler } from "../page.js";

// Alerts (docs/alerts.md): open ones first, each with what it is about (linked to its issue, firmware or
// promise), its escalation level, since when, how its latest notice reached each target, and for operators an
// Acknowledge form; acknowledged and resolved below. The page reads and acts through the API in-process.

const SHOWN = 100;

export const alertsPage: PageHandler = async (c, deps) => {
  const alerts = c.get("session").api.api.v1.alerts;
  const canAct = c.get("session").canAct;
  const query = (status: "open" | "acknowledged" | "resolved") => ({ status, limit: String(SHOWN) });
  const [open, acknowledged, resolved] = await Promise.all([
    load(alerts.$get({ query: query("open") })),
    load(alerts.$get({ query: query("acknowledged") })),
    load(alerts.$get({ query: query("resolved") })),
  ]);
  const isEmpty = (page: AlertPage) => page.items.length === 0;
  return render(c, deps.assets, {
    title: "Alerts",
    section: "alerts",
    children: (
      <div class="panels alerts-page">
        <Panel
          title="Open"
          live="alerts-open"
          wide
          loaded={open}
          isEmpty={isEmpty}
          empty="No open alert: nothing fieldq alerts on is going on unacknowledged."
          render={(page) => <AlertTable page={page} label="Open alerts" canAct={canAct} />}
        />
        <Panel
          title="Acknowledged"
          live="alerts-acknowledged"
          wide
          loaded={acknowledged}
          isEmpty={isEmpty}
          empty="No acknowledged alert is still active."
          render={(page) => <AlertTable page={page} label="Acknowledged alerts" canAct={false} />}
        />
        <Panel
          title="Resolved"
          live="alerts-resolved"
          wide
          loaded={resolved}
          isEmpty={isEmpty}
          empty="No alert has been resolved yet."
          render={(page) => <AlertTable page={page} label="Resolved alerts" canAct={false} />}
        />
      </div>
    ),
  });
};

/** Where the alert's subject lives on the dashboard, from its refs. */
export function subjectHref(refs: Record<string, string>): string | null {
  if (refs.issue !== undefined) return `/issues/${encodeURIComponent(refs.issue)}`;
  if (refs.device !== undefined) return `/devices/${encodeURIComponent(refs.device)}`;
  if (refs.model !== undefined && refs.firmware !== undefined)
    return `/firmware?${new URLSearchParams({ model: refs.model, b: refs.firmware })}`;
  if (refs.promise !== undefined || refs.kind === "promise")
    return refs.model === undefined ? "/promises" : `/promises?${new URLSearchParams({ model: refs.model })}`;
  if (refs.model !== undefined) return `/firmware?${new URLSearchParams({ model: refs.model })}`;
  return null;
}

function AlertTable(props: { page: AlertPage; label: string; canAct: boolean }) {
  const more = props.page.nextOffset !== null;
  return (
    <>
      <TableWrap label={props.label}>
        <table class="al-table">
          <thead>
            <tr>
              <th scope="col">Severity</th>
              <th scope="col">Alert</th>
              <th scope="col">Level</th>
              <th scope="col">Since</th>
              <th scope="col">Delivery</th>
              <th scope="col">{props.canAct ? "Acknowledge" : "Acknowledged"}</th>
            </tr>
          </thead>
          <tbody>
            {props.page.items.map((alert) => (
              <AlertRow alert={alert} canAct={props.canAct} />
            ))}
          </tbody>
        </table>
      </TableWrap>
      {more ? (
        <p class="note">Showing the newest {SHOWN}; GET /api/v1/alerts pages through the rest.</p>
      ) : null}
    </>
  );
}

function AlertRow(props: { alert: AlertSummary; canAct: boolean }) {
  const { alert } = props;
  const href = subjectHref(alert.refs);
  const formId = `ack-${alert.id.replace(/[^A-Za-z0-9_-]/g, "-")}`;
  return (
    <tr id={alert.id}>
      <td>
        <Severity severity={alert.severity} />
      </td>
      <th scope="row" class="al-what">
        <span class="al-title">{alert.title}</span>
        <span class="al-subject">{href === null ? alert.subject : <a href={href}>{alert.subject}</a>}</span>
        <span class="al-rule">
          rule {alert.rule}
          {alert.latest.event === "resolved" ? " · resolved" : ""}
        </span>
      </th>
      <td>
        <span class="al-level">
          {alert.level} · {alert.levelName}
        </span>
      </td>
      <td>
        <When iso={alert.raisedAt} />
      </td>
      <td>
        <ul class="al-deliveries">
          {alert.deliveries.length === 0 ? <li class="muted">no target</li> : null}
          {alert.deliveries.map((d) => (
            <DeliveryItem delivery={d} />
          ))}
        </ul>
      </td>
      <td>
        {props.canAct && alert.status === "open" ? (
          <form method="post" action={`/alerts/${encodeURIComponent(alert.id)}/acknowledge`} class="al-ack">
            <label for={formId}>Note</label>
            <input id={formId} name="note" type="text" maxlength={2000} placeholder="optional" />
            <button type="submit">Acknowledge</button>
          </form>
        ) : alert.acknowledged !== null ? (
          <span class="al-acked">
            by {alert.acknowledged.by}, <When iso={alert.acknowledged.at} />
            {alert.acknowledged.note === null ? null : (
              <span class="al-note">“{alert.acknowledged.note}”</span>
            )}
          </span>
        ) : (
          <span class="muted">–</span>
        )}
      </td>
    </tr>
  );
}

const DELIVERY_WORD: Record<
  TargetDelivery["state"],
  [tone: "good" | "bad" | "warn" | "muted", word: string]
> = {
  pending: ["muted", "pending"],
  delivered: ["good", "delivered"],
  failing: ["warn", "failing"],
  rejected: ["bad", "refused"],
  gave_up: ["bad", "gave up"],
};

function DeliveryItem(props: { delivery: TargetDelivery }) {
  const d = props.delivery;
  const [tone, word] = DELIVERY_WORD[d.state];
  return (
    <li>
      <span class="al-target">{d.target}</span> <Badge tone={tone}>{word}</Badge>{" "}
      {d.state === "delivered" ? (
        <When iso={d.deliveredAt} format="time" />
      ) : d.state === "failing" ? (
        <span class="al-failing">
          {d.attempts} {d.attempts === 1 ? "try" : "tries"}, {d.lastError ?? "failed"}; next{" "}
          <When iso={d.nextTry} format="time" />
        </span>
      ) : d.state === "rejected" || d.state === "gave_up" ? (
        <span class="al-failing">{d.lastError ?? ""}</span>
      ) : null}
    </li>
  );
}

/** POST /alerts/:id/acknowledge from the page's forms. */
export const alertAction: PageHandler = async (c) => {
  const session = c.get("session");
  if (!session.canAct) return c.text("refused: your role may not acknowledge alerts", 403);
  if (c.req.param("action") !== "acknowledge") return c.text("no such action", 404);
  const id = c.req.param("id") ?? "";
  const body = await c.req.parseBody();
  const note = typeof body.note === "string" ? body.note.trim() : "";
  const result = await load(
    session.api.api.v1.alerts[":id"].acknowledge.$post({
      param: { id },
      query: {},
      json: note === "" ? {} : { note },
    }),
  );
  if (result.ok)
    flash(c, `Alert acknowledged${note === "" ? "" : ", with your note"}: ${result.data.alert.title}.`);
  else if (result.status === 409)
    flash(c, "That alert was resolved in the meantime; nothing to acknowledge.");
  else flash(c, `Not acknowledged: ${failureText(result)}.`);
  return c.redirect("/alerts", 303);
};
