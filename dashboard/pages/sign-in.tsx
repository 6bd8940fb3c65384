import type { Context } from "hono";
import { ErrorState } from "../components.js";
import { Document, html } from "../layout.js";
import type { PageDeps } from "../page.js";
import { type DashboardEnv, safeNext } from "../session.js";

// The sign-in page: one field for the token (a password field, so it is not shown or remembered in the URL or
// the history), posted once; the answer sets the session cookie (session.ts) and goes where the user was headed.

export type SignInState = { next: string; error?: string; status?: 200 | 401 | 429 };

export function signInPage(c: Context<DashboardEnv>, deps: PageDeps, state: SignInState) {
  return html(
    c,
    <Document title="Sign in" assets={deps.assets} liveEverySeconds={0}>
      <main id="main" class="sign-in">
        <h1>fieldq</h1>
        <p>
          Field quality of your connected devices. Sign in with the API token your administrator gave you.
        </p>
        <form method="post" action="/sign-in" class="stack">
          <input type="hidden" name="next" value={safeNext(state.next)} />
          <label for="token">Token</label>
          <input
            id="token"
            name="token"
            type="password"
            autocomplete="current-password"
            required
            aria-describedby={state.error === undefined ? "token-help" : "token-help token-error"}
            autofocus
          />
          <p id="token-help" class="help">
            A viewer token reads; an operator token also acknowledges, assigns and notes issues. Tokens come
            from <code>FIELDQ_API_TOKENS</code> (<code>npm run demo</code> prints one).
          </p>
          {state.error === undefined ? null : (
            <div id="token-error">
              <ErrorState message={state.error} />
            </div>
          )}
          <button type="submit">Sign in</button>
        </form>
      </main>
    </Document>,
    state.status ?? 200,
  );
}
