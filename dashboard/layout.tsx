import type { Context } from "hono";
import { getCookie, setCookie } from "hono/cookie";
import type { Child } from "hono/jsx";
import type { HtmlEscapedString } from "hono/utils/html";
import type { Assets } from "./assets.js";
import { type DashboardEnv, LIVE_HEADER, type Session } from "./session.js";

// The frame of every page: a skip link, the navigation, the device search, who is signed in, and the live
// status; the page's own content in <main>. One stylesheet and one script, both with hashed names.

export type Section =
  | "overview"
  | "issues"
  | "devices"
  | "firmware"
  | "silence"
  | "alerts"
  | "promises"
  | "review";

const NAV: Array<{ section: Section; href: string; label: string }> = [
  { section: "overview", href: "/", label: "Overview" },
  { section: "issues", href: "/issues", label: "Issues" },
  { section: "devices", href: "/devices", label: "Devices" },
  { section: "firmware", href: "/firmware", label: "Firmware" },
  { section: "silence", href: "/silence", label: "Silence" },
  { section: "alerts", href: "/alerts", label: "Alerts" },
  { section: "promises", href: "/promises", label: "Promises" },
  { section: "review", href: "/review", label: "Review" },
];

/** A short message for the next page shown (after a form's redirect): set here, shown and cleared by render. */
const FLASH_COOKIE = "fieldq_flash";

export function flash(c: Context, message: string): void {
  setCookie(c, FLASH_COOKIE, encodeURIComponent(message), {
    httpOnly: true,
    sameSite: "Lax",
    path: "/",
    maxAge: 60,
  });
}

export type PageProps = {
  /** The page's title, also its <h1>. */
  title: string;
  section: Section | null;
  children: Child;
  /** Beside the title: filters, a search. */
  actions?: Child;
  /** Seconds between live refreshes of the page's [data-live] regions; 0 for none (sign-in, forms). */
  liveEverySeconds?: number;
};

export function Document(props: {
  title: string;
  assets: Assets;
  children: Child;
  liveEverySeconds: number;
}) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="color-scheme" content="light" />
        <title>{`${props.title} · fieldq`}</title>
        {/* No icon to fetch: a browser's request for /favicon.ico would be a 404 in its console. */}
        <link rel="icon" href="data:," />
        <link rel="stylesheet" href={`/assets/${props.assets.style.name}`} />
        <script type="module" src={`/assets/${props.assets.script.name}`} />
      </head>
      <body data-live-every={String(props.liveEverySeconds)}>
        <a class="skip" href="#main">
          Skip to content
        </a>
        {props.children}
      </body>
    </html>
  );
}

function Frame(props: PageProps & { session: Session | undefined; flash: string | undefined }) {
  return (
    <>
      <header class="top">
        <a class="brand" href="/">
          fieldq
        </a>
        {props.session === undefined ? null : (
          <>
            <nav aria-label="Main">
              <ul>
                {NAV.map((n) => (
                  <li>
                    <a href={n.href} aria-current={n.section === props.section ? "page" : undefined}>
                      {n.label}
                    </a>
                  </li>
                ))}
              </ul>
            </nav>
            <search>
              <form class="search" method="get" action="/devices">
                <label for="device-search">Find a device</label>
                <input
                  id="device-search"
                  name="q"
                  type="search"
                  placeholder="Serial, id or text"
                  autocomplete="off"
                  spellcheck={false}
                />
                <button type="submit">Search</button>
              </form>
            </search>
            <div class="who">
              <span>
                Signed in as <strong>{props.session.name}</strong>
                {props.session.name === props.session.role ? "" : ` (${props.session.role})`}
              </span>
              <form method="post" action="/sign-out">
                <button type="submit" class="link">
                  Sign out
                </button>
              </form>
            </div>
          </>
        )}
      </header>
      <main id="main" tabindex={-1}>
        <div class="page-head">
          <h1>{props.title}</h1>
          {props.actions}
          <p class="live-status" data-live-status hidden></p>
        </div>
        {props.flash === undefined ? null : (
          <p class="flash" role="status">
            {props.flash}
          </p>
        )}
        {props.children}
      </main>
    </>
  );
}

/** The whole page for this request; a live refresh gets the same HTML and takes its [data-live] regions. */
export function render(
  c: Context<DashboardEnv>,
  assets: Assets,
  props: PageProps,
  status: 200 | 400 | 404 | 503 = 200,
) {
  const live = c.req.header(LIVE_HEADER) !== undefined;
  const raw = live ? undefined : getCookie(c, FLASH_COOKIE);
  if (raw !== undefined) setCookie(c, FLASH_COOKIE, "", { path: "/", maxAge: 0 });
  const message = raw === undefined ? undefined : safeDecode(raw);
  c.header("cache-control", "no-store");
  return html(
    c,
    <Document title={props.title} assets={assets} liveEverySeconds={props.liveEverySeconds ?? 10}>
      <Frame {...props} session={c.get("session")} flash={message} />
    </Document>,
    status,
  );
}

/** A document with its doctype (standards mode). */
export async function html(
  c: Context,
  document: HtmlEscapedString | Promise<HtmlEscapedString>,
  status: 200 | 400 | 401 | 403 | 404 | 429 | 500 | 503,
) {
  // Scripts only from this origin (no inline script can run, whatever a device named itself); no framing.
  c.header(
    "content-security-policy",
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
      "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  );
  c.header("x-content-type-options", "nosniff");
  c.header("referrer-policy", "same-origin");
  return c.html(`<!DOCTYPE html>${await document}`, status);
}

function safeDecode(value: string): string | undefined {
  try {
    return decodeURIComponent(value);
  } catch {
    return undefined;
  }
}
