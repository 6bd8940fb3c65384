import { render } from "../layout.js";
import type { PageHandler } from "../page.js";

export const overviewPage: PageHandler = async (c, deps) =>
  render(c, deps.assets, { title: "Overview", section: "overview", children: <p>Not built yet.</p> });
