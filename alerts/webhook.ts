import { createHmac, timingSafeEqual } from "node:crypto";
import type { AlertNoticeBody } from "../contract/api/alerts.js";
import { parseRetryAfter } from "./backoff.js";
import type { SendOutcome, Target } from "./target.js";
import type { AlertNotice } from "./types.js";

// The webhook target: the notice as a JSON POST, signed with HMAC-SHA256 over the raw body. docs/alerts.md
// shows a receiver's check; verifySignature is the same check.

// The engine's notice and the documented body are one shape: a change to either fails the typecheck here.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const agree: Same<AlertNotice, AlertNoticeBody> = true;
void agree;

export const SIGNATURE_HEADER = "X-Fieldq-Signature";
export const USER_AGENT = "fieldq-alerts/1";

/** `sha256=<hex HMAC-SHA256(secret, body)>`: the X-Fieldq-Signature of a body. */
export const signBody = (secret: string, body: string | Buffer): string =>
  `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;

/** Whether a signature header is the body's, compared in constant time. */
export function verifySignature(secret: string, body: string | Buffer, header: string | null | undefined) {
  if (typeof header !== "string") return false;
  const expected = Buffer.from(signBody(secret, body));
  const given = Buffer.from(header.trim());
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** 4xx other than 408 and 429: the receiver will not take this notice however often it is sent. */
const permanent = (status: number) => status >= 400 && status < 500 && status !== 408 && status !== 429;

export type WebhookOptions = {
  name: string;
  url: string;
  secret: string;
  fetch?: typeof fetch;
  now?: () => number;
};

export function webhookTarget(options: WebhookOptions): Target {
  const doFetch = options.fetch ?? fetch;
  const now = options.now ?? Date.now;
  return {
    name: options.name,
    async send(notice, signal): Promise<SendOutcome> {
      const body = JSON.stringify(notice);
      let response: Response;
      try {
        response = await doFetch(options.url, {
          method: "POST",
          body,
          redirect: "manual",
          signal,
          headers: {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            [SIGNATURE_HEADER]: signBody(options.secret, body),
            "Idempotency-Key": notice.idempotencyKey,
            "X-Fieldq-Event": notice.event,
          },
        });
      } catch (error) {
        return { ok: false, permanent: false, status: null, error: describe(error, signal) };
      }
      // The body is not read: its socket goes back to the pool.
      await response.body?.cancel().catch(() => {});
      const status = response.status;
      if (status >= 200 && status < 300) return { ok: true, status };
      if (status >= 300 && status < 400)
        return {
          ok: false,
          permanent: false,
          status,
          error: `HTTP ${status}: redirects are not followed (${response.headers.get("location") ?? "no location"})`,
        };
      return {
        ok: false,
        permanent: permanent(status),
        status,
        error: `HTTP ${status}`,
        retryAfterMs: parseRetryAfter(response.headers.get("retry-after"), now()),
      };
    },
  };
}

function describe(error: unknown, signal: AbortSignal): string {
  if (signal.aborted) {
    const reason = signal.reason as { name?: string } | undefined;
    return reason?.name === "TimeoutError" ? "timed out" : "aborted";
  }
  const cause = (error as { cause?: { code?: string; message?: string } } | null)?.cause;
  if (cause?.code) return cause.code;
  return error instanceof Error ? error.message : String(error);
}
