import { render } from "../layout.js";
import type { PageHandler } from "../page.js";

export const silencePage: PageHandler = async (c, deps) =>
  render(c, deps.assets, { title: "Silence", section: "silence", children: <p>Not built yet.</p> });
