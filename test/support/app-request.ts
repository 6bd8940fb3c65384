/** Init of an in-process request: a token (default the caller's; null for none), a method, a JSON body. */
export type RequestInit = { token?: string | null; method?: string; body?: unknown };

/** Requests an app in-process (hono's app.request) with a bearer token and a JSON body. */
export function appRequester(
  app: { request(path: string, init: globalThis.RequestInit): Response | Promise<Response> },
  defaultToken: string,
) {
  return (path: string, init: RequestInit = {}) => {
    const token = init.token === undefined ? defaultToken : init.token;
    const headers: Record<string, string> = {};
    if (token !== null) headers.authorization = `Bearer ${token}`;
    if (init.body !== undefined) headers["content-type"] = "application/json";
    return Promise.resolve(
      app.request(path, {
        method: init.method ?? "GET",
        headers,
        ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
      }),
    );
  };
}
