import { render } from "../layout.js";
import type { PageHandler } from "../page.js";

export const devicesPage: PageHandler = async (c, deps) =>
  render(c, deps.assets, { title: "Devices", section: "devices", children: <p>Not built yet.</p> });
