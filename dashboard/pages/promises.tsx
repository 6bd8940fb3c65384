import type { PromiseDay, PromiseReport, PromisesAnswer } from "../../contract/api/promises.js";
import { DAY_MS } from "../../contract/time.js";
import { Badge, Kpis, Panel, TableWrap, When } from "../components.js";
import { count, decimal, percent } from "../format.js";
import { render } from "../layout.js";
import { load } from "../load.js";
import type { PageHandler } from "../page.js";

// Service promises per model (ISO 10001, docs/promises.md): each promise's status in words and colour, its
// error budget left, burn rate and a 30-day compliance strip (a cell per UTC day, a sign in each, so colour is
// never the only signal). The model filter is in the URL. Without a promises file: how to add one.

const STRIP_DAYS = 30;

export const promisesPage: PageHandler = async (c, deps) => {
  const api = c.get("session").api.api.v1;
  const model = c.req.query("model") || undefined;
  const now = deps.now();
  const query = {
    from: new Date(now - STRIP_DAYS * DAY_MS).toISOString(),
    to: new Date(now).toISOString(),
    ...(model === undefined ? {} : { model }),
  };
  const answer = await load(api.promises.$get({ query }));
  return render(c, deps.assets, {
    title: "Promises",
    section: "promises",
    children: (
      <div class="panels promises-page">
        <Panel
          title="Service promises"
          live="promises-summary"
          wide
          loaded={answer}
          isEmpty={(a) => a.models.length === 0}
          empty=""
          render={(a) => <Summary answer={a} />}
        />
        {answer.ok && answer.data.models.length === 0 ? <NothingPromised answer={answer.data} /> : null}
        {answer.ok
          ? answer.data.models.map((m) => (
              <Panel
                title={m.model}
                live={`promises-${m.model.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`}
                wide
                loaded={{ ok: true, data: m.promises }}
                empty="Nothing promised for this model."
                isEmpty={(list) => list.length === 0}
                render={(list) => <ModelPromises promises={list} />}
              />
            ))
          : null}
      </div>
    ),
  });
};

function NothingPromised(props: { answer: PromisesAnswer }) {
  return (
    <section class="panel wide" aria-labelledby="promises-none">
      <header class="panel-head">
        <h2 id="promises-none">Nothing is promised yet</h2>
      </header>
      <p>{props.answer.message}</p>
      <p>
        Write a promises file (YAML or JSON) and point <code>FIELDQ_PROMISES</code> at it, then restart
        fieldq. For example, for the home-demo fleet:
      </p>
      <pre class="pr-example">
        {`models:
  FQ-Modem 7590:
    availability: { target: 0.95 }       # 95% of the modems online each day
    faultRates:
      critical: { max: 60 }              # per 1,000 device-hours a day
    response:
      critical: { within: 4h }           # a new critical issue answered in 4 hours`}
      </pre>
      <p>
        Every field is described in docs/promises.md; docs/promises.example.yaml covers every model of the
        demo.
      </p>
    </section>
  );
}

const STATUS_TONE = { ok: "good", burning: "warn", breached: "bad", insufficient_data: "muted" } as const;
const STATUS_WORD = {
  ok: "in promise",
  burning: "burning budget",
  breached: "breached",
  insufficient_data: "insufficient data",
} as const;

export const PromiseStatusBadge = (props: { status: PromiseReport["status"] }) => (
  <Badge tone={STATUS_TONE[props.status]}>{STATUS_WORD[props.status]}</Badge>
);

function Summary(props: { answer: PromisesAnswer }) {
  const all = props.answer.models.flatMap((m) => m.promises);
  const by = (status: PromiseReport["status"]) => all.filter((p) => p.status === status).length;
  return (
    <>
      <Kpis
        items={[
          {
            label: "Promises",
            value: count(all.length),
            note: `${count(props.answer.models.length)} models`,
          },
          { label: "Breached", value: count(by("breached")), note: "yesterday missed or budget spent" },
          { label: "Burning budget", value: count(by("burning")), note: "fast over 7 and 3 days" },
          { label: "Insufficient data", value: count(by("insufficient_data")), note: "no day judged" },
        ]}
      />
      <p class="note">
        Judged per UTC day as of <When iso={props.answer.asOf} />; read from {props.answer.file ?? "no file"}.
      </p>
    </>
  );
}

function ModelPromises(props: { promises: PromiseReport[] }) {
  return (
    <TableWrap label="Promises">
      <table class="pr-table">
        <thead>
          <tr>
            <th scope="col">Promise</th>
            <th scope="col">Status</th>
            <th scope="col">Compliance</th>
            <th scope="col">Budget left</th>
            <th scope="col">Burn rate</th>
            <th scope="col">Last {STRIP_DAYS} days</th>
          </tr>
        </thead>
        <tbody>
          {props.promises.map((p) => (
            <tr>
              <th scope="row">
                <span class="pr-name">{p.name}</span>
                <span class="pr-summary">{p.summary}</span>
              </th>
              <td>
                <PromiseStatusBadge status={p.status} />
                <span class="pr-reason">{p.reason}</span>
              </td>
              <td>
                {percent(p.compliance)}
                <span class="pr-sub">
                  of {count(p.judgedDays)} judged days; objective {percent(p.objective)} over {p.periodDays} d
                </span>
              </td>
              <td>
                <BudgetBar leftShare={p.budget.leftShare} />
                <span class="pr-sub">
                  {decimal(p.budget.leftDays)} of {decimal(p.budget.allowedDays)} days
                </span>
              </td>
              <td>
                {decimal(p.burnRate.long.rate)}×
                <span class="pr-sub">
                  {p.burnRate.long.days} d; {decimal(p.burnRate.short.rate)}× over {p.burnRate.short.days} d
                </span>
              </td>
              <td>
                <Strip promise={p} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableWrap>
  );
}

function BudgetBar(props: { leftShare: number | null }) {
  const share = props.leftShare === null ? 0 : Math.max(0, Math.min(1, props.leftShare));
  const overspent = props.leftShare !== null && props.leftShare < 0;
  return (
    <span class="pr-budget" role="img" aria-label={overspent ? "overspent" : `${percent(share)} left`}>
      <span
        class={overspent ? "pr-budget-fill over" : "pr-budget-fill"}
        style={`width:${overspent ? 100 : share * 100}%`}
      />
      <span class="pr-budget-text">{overspent ? "overspent" : percent(share)}</span>
    </span>
  );
}

const DAY_SIGN: Record<PromiseDay["state"], string> = {
  met: "✓",
  missed: "✗",
  insufficient: "?",
  pending: "…",
  none: "·",
};
const DAY_WORD: Record<PromiseDay["state"], string> = {
  met: "met",
  missed: "missed",
  insufficient: "not judged (too small a sample)",
  pending: "not over",
  none: "nothing to judge",
};

function dayValue(p: PromiseReport, d: PromiseDay): string {
  if (d.value === null) return "no sample";
  return p.kind === "fault_rate" ? `${decimal(d.value)} per 1,000 device-hours` : percent(d.value);
}

function sampleText(d: PromiseDay): string {
  const s = d.sample;
  if (s.devices !== undefined) return `${count(s.online ?? 0)} of ${count(s.devices)} devices`;
  if (s.deviceHours !== undefined)
    return `${count(s.faults ?? 0)} faults in ${decimal(s.deviceHours)} device-hours`;
  return `${count(s.issues ?? 0)} new issues, ${count(s.late ?? 0)} late`;
}

function Strip(props: { promise: PromiseReport }) {
  const p = props.promise;
  const missed = p.days.filter((d) => d.state === "missed").length;
  return (
    <ol class="pr-strip" aria-label={`${p.name}: ${missed} of ${p.days.length} days missed`}>
      {p.days.map((d) => {
        const text = `${d.day.slice(0, 10)}: ${DAY_WORD[d.state]}, ${dayValue(p, d)} (${sampleText(d)})`;
        return (
          <li class={`pr-day ${d.state}`} title={text}>
            <span aria-hidden="true">{DAY_SIGN[d.state]}</span>
            <span class="pr-sr">{text}</span>
          </li>
        );
      })}
    </ol>
  );
}
