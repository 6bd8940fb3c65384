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

/** Requests a listening API over HTTP with a bearer token and a JSON body: its status and JSON answer. */
export async function httpRequest(
  baseUrl: string,
  method: "GET" | "POST",
  path: string,
  token: string,
  body?: unknown,
): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, body: (await response.json()) as unknown };
}
