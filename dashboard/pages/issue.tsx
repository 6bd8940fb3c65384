import { render } from "../layout.js";
import type { PageHandler } from "../page.js";

export const issuePage: PageHandler = async (c, deps) =>
  render(c, deps.assets, { title: "Issue", section: "issues", children: <p>Not built yet.</p> });

/** A form's action on an issue (operator): POST /issues/:id/:action. */
export const issueAction: PageHandler = async (c) => c.text("not built yet", 501);
