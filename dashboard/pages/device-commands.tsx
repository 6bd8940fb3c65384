import type { Context } from "hono";
import type { CommandStatus, CommandView } from "../../contract/api/commands.js";
import type { CommandType } from "../../contract/messages.js";
import { Badge, Panel, TableWrap, When } from "../components.js";
import { flash } from "../layout.js";
import { load } from "../load.js";
import type { PageHandler } from "../page.js";
import type { DashboardEnv } from "../session.js";

// The device page's commands (docs/commands.md): for an operator, a button per command (a plain POST form;
// POST /devices/:id/commands queues it through the API in-process, flashes what happened and redirects back),
// and for everyone the device's recent commands with their status, who sent them and when, refreshed live.

const RECENT = 10;

const BUTTONS: ReadonlyArray<{ type: CommandType; label: string; hint: string }> = [
  { type: "reboot", label: "Reboot", hint: "Restarts the device" },
  { type: "recalibrate", label: "Recalibrate", hint: "Runs the device's calibration" },
  { type: "diagnostics", label: "Run diagnostics", hint: "The device runs its self-test and reports" },
];

const STATUS_TONE: Record<CommandStatus, "good" | "bad" | "warn" | "muted" | "info"> = {
  queued: "muted",
  delivered: "info",
  succeeded: "good",
  failed: "bad",
  expired: "warn",
};

const STATUS_TEXT: Record<CommandStatus, string> = {
  queued: "waiting for the device",
  delivered: "delivered",
  succeeded: "succeeded",
  failed: "failed",
  expired: "expired",
};

export async function loadDeviceCommands(c: Context<DashboardEnv>, id: string) {
  const commands = c.get("session").api.api.v1.devices[":id"].commands;
  return load(commands.$get({ param: { id }, query: { limit: String(RECENT) } }));
}

export function CommandsPanel(props: {
  id: string;
  loaded: Awaited<ReturnType<typeof loadDeviceCommands>>;
  canAct: boolean;
}) {
  return (
    <Panel
      title="Commands"
      live="device-commands"
      wide
      loaded={props.loaded}
      extra={props.canAct ? <CommandButtons id={props.id} /> : undefined}
      isEmpty={(d) => d.items.length === 0}
      empty={
        props.canAct
          ? "No command sent to this device yet. A command waits until the device is connected, or expires."
          : "No command sent to this device yet."
      }
      render={(d) => <CommandTable items={d.items} />}
    />
  );
}

function CommandButtons(props: { id: string }) {
  return (
    <form
      method="post"
      action={`/devices/${encodeURIComponent(props.id)}/commands`}
      class="command-buttons"
      aria-label="Send a command to this device"
    >
      {BUTTONS.map((b) => (
        <button type="submit" name="type" value={b.type} title={b.hint}>
          {b.label}
        </button>
      ))}
    </form>
  );
}

function CommandTable(props: { items: CommandView[] }) {
  return (
    <TableWrap label="Commands sent to this device, newest first">
      <table class="commands">
        <thead>
          <tr>
            <th scope="col">Command</th>
            <th scope="col">Status</th>
            <th scope="col">Sent by</th>
            <th scope="col">Queued</th>
            <th scope="col">Delivered</th>
            <th scope="col">Device's answer</th>
          </tr>
        </thead>
        <tbody>
          {props.items.map((cmd) => (
            <tr>
              <td>
                {cmd.type}
                {cmd.batch === null ? null : <span class="muted"> (bulk)</span>}
              </td>
              <td>
                <Badge tone={STATUS_TONE[cmd.status]}>{STATUS_TEXT[cmd.status]}</Badge>
                {cmd.status === "queued" ? (
                  <span class="muted">
                    {" "}
                    until <When iso={cmd.expiresAt} />
                  </span>
                ) : null}
              </td>
              <td>{cmd.by}</td>
              <td>
                <When iso={cmd.createdAt} />
              </td>
              <td>
                <When iso={cmd.deliveredAt} />
              </td>
              <td>{cmd.result === null ? "–" : (cmd.result.message ?? (cmd.result.ok ? "ok" : "not ok"))}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableWrap>
  );
}

/** POST /devices/:id/commands from the panel's buttons (operator). */
export const deviceCommandAction: PageHandler = async (c) => {
  const session = c.get("session");
  // The API would refuse it too; say so before asking.
  if (!session.canAct) return c.text("refused: your role may not send commands", 403);
  const id = c.req.param("id") ?? "";
  const body = await c.req.parseBody();
  const button = BUTTONS.find((b) => b.type === body.type);
  const back = `/devices/${encodeURIComponent(id)}`;
  if (button === undefined) {
    flash(c, "Choose a command with one of the buttons.");
    return c.redirect(back, 303);
  }
  try {
    const response = await session.api.api.v1.devices[":id"].commands.$post({
      param: { id },
      query: {},
      json: { type: button.type },
    });
    if (response.status === 202) {
      flash(c, `${button.label} queued: it goes out when the device is connected.`);
    } else {
      const answer: unknown = await response.json().catch(() => undefined);
      const message = (answer as { error?: { message?: unknown } } | undefined)?.error?.message;
      flash(
        c,
        response.status === 403
          ? "Your role may not send commands."
          : `${button.label} not sent: ${typeof message === "string" ? message : `the API answered ${response.status}`}.`,
      );
    }
  } catch (error) {
    flash(c, `${button.label} not sent: ${error instanceof Error ? error.message : String(error)}.`);
  }
  return c.redirect(back, 303);
};
