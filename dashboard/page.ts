import type { Context } from "hono";
import type { Assets } from "./assets.js";
import type { DashboardEnv } from "./session.js";

// What a page file exports: a handler for its path (dashboard/mount.tsx wires paths to handlers). A page reads
// the API with c.get("session").api, renders with layout.tsx render(), and holds its filters in the URL's query.

export type PageDeps = { assets: Assets; now: () => number };

export type PageHandler = (c: Context<DashboardEnv>, deps: PageDeps) => Promise<Response>;
