import type { ClientResponse } from "hono/client";

// A panel's data: what the API answered, or why not, so one panel's failure is that panel's error state and
// never a blank page.

export type Loaded<T> = { ok: true; data: T } | { ok: false; status: number; message: string };

/** The body a typed client response carries with a 200. */
export type Ok<R> = R extends ClientResponse<infer T, 200, "json"> ? T : never;

/** Awaits an API call made with the session's client; never throws. */
export async function load<R extends ClientResponse<unknown, number, string>>(
  pending: Promise<R>,
): Promise<Loaded<Ok<R>>> {
  try {
    const response = await pending;
    if (response.status === 200) return { ok: true, data: (await response.json()) as Ok<R> };
    const body: unknown = await response.json().catch(() => undefined);
    const message = (body as { error?: { message?: unknown } } | undefined)?.error?.message;
    return {
      ok: false,
      status: response.status,
      message: typeof message === "string" ? message : `the API answered ${response.status}`,
    };
  } catch (error) {
    return { ok: false, status: 0, message: error instanceof Error ? error.message : String(error) };
  }
}

/** What a person should read for a failed load. */
export function failureText(failure: { status: number; message: string }): string {
  switch (failure.status) {
    case 503:
      return `The data store is not answering right now (${failure.message}). This panel retries on its own.`;
    case 404:
      return `Not found: ${failure.message}.`;
    case 429:
      return "Too many requests from this sign-in just now; this panel retries in a few seconds.";
    case 401:
    case 403:
      return `Not allowed: ${failure.message}.`;
    default:
      return `Could not load this: ${failure.message}.`;
  }
}
