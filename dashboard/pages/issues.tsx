import { render } from "../layout.js";
import type { PageHandler } from "../page.js";

export const issuesPage: PageHandler = async (c, deps) =>
  render(c, deps.assets, { title: "Issues", section: "issues", children: <p>Not built yet.</p> });
