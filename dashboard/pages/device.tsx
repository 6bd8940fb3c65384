import { render } from "../layout.js";
import type { PageHandler } from "../page.js";

export const devicePage: PageHandler = async (c, deps) =>
  render(c, deps.assets, { title: "Device", section: "devices", children: <p>Not built yet.</p> });
