import { render } from "../layout.js";
import type { PageHandler } from "../page.js";

export const firmwarePage: PageHandler = async (c, deps) =>
  render(c, deps.assets, { title: "Firmware", section: "firmware", children: <p>Not built yet.</p> });
