import { hc } from "hono/client";
import { type AppType, IN_PROCESS } from "./app.js";

// The typed client of the fieldq API: hono's `hc` over the app's own type, so a TypeScript caller (the
// simulator's scorer, the dashboard) gets each route's query, path parameters and answer checked by the
// compiler, from the same route definitions the server validates with.

export type ApiClientOptions = {
  /** A bearer token; viewer is enough to read. */
  token?: string | undefined;
  /** The HTTP client; global fetch unless given (a test passes app.request, a caller a retrying fetch). */
  fetch?: typeof fetch;
};

export function createApiClient(baseUrl: string, options: ApiClientOptions = {}) {
  const base = baseUrl.replace(/\/+$/, "").replace(/\/api\/v1$/, "");
  return hc<AppType>(base, {
    ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
    headers: options.token === undefined ? {} : { authorization: `Bearer ${options.token}` },
  });
}

export type ApiClient = ReturnType<typeof createApiClient>;

/** A client that calls the app in this process, without a socket and without a second rate limit. */
export function createInProcessClient(app: AppType, token: string) {
  return createApiClient("http://in-process", {
    token,
    fetch: (input, init) =>
      Promise.resolve(app.request(input instanceof Request ? input : String(input), init, IN_PROCESS)),
  });
}
