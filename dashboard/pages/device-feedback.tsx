import type { Context } from "hono";
import { FEEDBACK_CATEGORIES, FeedbackCategory, MAX_FEEDBACK_TEXT } from "../../contract/api/feedback.js";
import { DAY_MS } from "../../contract/time.js";
import { ErrorState, TableWrap, When } from "../components.js";
import { flash } from "../layout.js";
import { failureText, load } from "../load.js";
import type { PageHandler } from "../page.js";
import type { DashboardEnv } from "../session.js";

// The device page's customer feedback: the support desk's form (operator) and what was recorded for the
// device over the last 90 days, newest first.

const SHOWN_DAYS = 90;
const SHOWN = 20;

const LABELS: Record<FeedbackCategory, string> = {
  complaint: "Complaint",
  return: "Return",
  question: "Question",
  suggestion: "Suggestion",
  praise: "Praise",
};

export async function loadDeviceFeedback(c: Context<DashboardEnv>, id: string) {
  const to = Date.now();
  return load(
    c.get("session").api.api.v1.feedback.$get({
      query: {
        device: id,
        from: new Date(to - SHOWN_DAYS * DAY_MS).toISOString(),
        to: new Date(to).toISOString(),
        limit: String(SHOWN),
      },
    }),
  );
}

export function FeedbackPanel(props: {
  id: string;
  loaded: Awaited<ReturnType<typeof loadDeviceFeedback>>;
  canAct: boolean;
}) {
  return (
    <section class="panel wide feedback" aria-labelledby="device-feedback" id="feedback">
      <header class="panel-head">
        <h2 id="device-feedback">Customer feedback</h2>
      </header>
      {props.canAct ? <FeedbackForm id={props.id} /> : null}
      <h3>Recorded by the support desk</h3>
      <div data-live="device-feedback-list">
        {!props.loaded.ok ? (
          <ErrorState message={failureText(props.loaded)} />
        ) : props.loaded.data.items.length === 0 ? (
          <p class="empty">{`Nothing recorded in the last ${SHOWN_DAYS} days.`}</p>
        ) : (
          <FeedbackTable page={props.loaded.data} />
        )}
      </div>
    </section>
  );
}

type Page = Extract<Awaited<ReturnType<typeof loadDeviceFeedback>>, { ok: true }>["data"];

function FeedbackTable(props: { page: Page }) {
  const page = props.page;
  return (
    <TableWrap label="Customer feedback recorded for this device">
      <table>
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Category</th>
            <th scope="col">Rating</th>
            <th scope="col">What was said</th>
            <th scope="col">Firmware</th>
            <th scope="col">By</th>
          </tr>
        </thead>
        <tbody>
          {page.items.map((r) => (
            <tr>
              <td>
                <When iso={r.at} />
              </td>
              <td>
                <span class={`category category-${r.category}`}>{LABELS[r.category]}</span>
              </td>
              <td>{r.rating === null ? "–" : `${r.rating} of 5`}</td>
              <td class="feedback-text">{r.text}</td>
              <td>{r.firmware}</td>
              <td>{r.actor}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {page.total > page.items.length ? (
        <p class="help">{`The newest ${page.items.length} of ${page.total}.`}</p>
      ) : null}
    </TableWrap>
  );
}

function FeedbackForm(props: { id: string }) {
  return (
    <form
      method="post"
      action={`/devices/${encodeURIComponent(props.id)}/feedback`}
      class="stack feedback-form"
    >
      <fieldset class="feedback-categories">
        <legend>What the customer called about</legend>
        {FEEDBACK_CATEGORIES.map((category, i) => (
          <label>
            <input type="radio" name="category" value={category} required checked={i === 0} />{" "}
            {LABELS[category]}
          </label>
        ))}
      </fieldset>
      <label for="feedback-rating">Satisfaction, if the customer gave one</label>
      <select id="feedback-rating" name="rating">
        <option value="">Not given</option>
        <option value="1">1 – very unhappy</option>
        <option value="2">2</option>
        <option value="3">3</option>
        <option value="4">4</option>
        <option value="5">5 – very happy</option>
      </select>
      <label for="feedback-text">What they said</label>
      <textarea id="feedback-text" name="text" rows={3} maxlength={MAX_FEEDBACK_TEXT} required />
      <div class="buttons">
        <button type="submit">Record feedback</button>
      </div>
    </form>
  );
}

const field = (form: Record<string, unknown>, name: string) => {
  const v = form[name];
  return typeof v === "string" ? v.trim() : "";
};

/** POST /devices/:id/feedback from the panel's form: recorded through the API, then back to the device. */
export const deviceFeedbackAction: PageHandler = async (c) => {
  const session = c.get("session");
  if (!session.canAct) return c.text("refused: your role may not record feedback", 403);
  const id = c.req.param("id") ?? "";
  const back = () => c.redirect(`/devices/${encodeURIComponent(id)}#feedback`, 303);
  const body = await c.req.parseBody();
  const category = FeedbackCategory.safeParse(field(body, "category"));
  const text = field(body, "text");
  const rating = field(body, "rating");
  if (!category.success || text === "") {
    flash(c, "Feedback not recorded: choose a category and write what the customer said.");
    return back();
  }
  try {
    const response = await session.api.api.v1.feedback.$post({
      query: {},
      json: {
        device: id,
        category: category.data,
        text,
        ...(/^[1-5]$/.test(rating) ? { rating: Number(rating) } : {}),
      },
    });
    if (response.status === 201) {
      flash(c, `${LABELS[category.data]} recorded.`);
    } else {
      const answer = (await response.json().catch(() => undefined)) as
        | { error?: { message?: string } }
        | undefined;
      flash(c, `Feedback not recorded: ${answer?.error?.message ?? `the API answered ${response.status}`}.`);
    }
  } catch (error) {
    flash(c, `Feedback not recorded: ${error instanceof Error ? error.message : String(error)}.`);
  }
  return back();
};
