import { createHmac, timingSafeEqual } from "node:crypto";
import { describe, expect, it } from "vitest";
import { signBody, verifySignature, webhookTarget } from "../../alerts/webhook.js";
import { AlertNoticeBody } from "../../contract/api/alerts.js";
import { sampleNotice } from "../support/alert-notice.js";

const SECRET = "a-webhook-secret-of-some-length";

type Sent = { url: string; init: RequestInit };

/** A fetch that records what it was given and answers with the response given. */
function recordingFetch(answer: () => Response | Promise<Response>) {
  const sent: Sent[] = [];
  const fake = (async (url: string | URL | Request, init?: RequestInit) => {
    sent.push({ url: String(url), init: init ?? {} });
    return answer();
  }) as typeof fetch;
  return { sent, fake };
}

const header = (s: Sent, name: string) => new Headers(s.init.headers).get(name);
const never = new AbortController().signal;

/** The receiver's check as docs/alerts.md shows it. */
function docsVerify(secret: string, rawBody: Buffer, signature: string | null): boolean {
  const expected = `sha256=${createHmac("sha256", secret).update(rawBody).digest("hex")}`;
  return (
    signature !== null &&
    signature.length === expected.length &&
    timingSafeEqual(Buffer.from(signature), Buffer.from(expected))
  );
}

describe("webhook signature", () => {
  it("is the HMAC-SHA256 of RFC 4231's test case 2", () => {
    expect(signBody("Jefe", "what do ya want for nothing?")).toBe(
      "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    );
  });

  it("signs the raw body it sends, which the documented check accepts", async () => {
    const { sent, fake } = recordingFetch(() => new Response(null, { status: 204 }));
    const target = webhookTarget({
      name: "webhook",
      url: "http://receiver.test/hook",
      secret: SECRET,
      fetch: fake,
    });
    const notice = sampleNotice();
    const outcome = await target.send(notice, never);
    expect(outcome).toEqual({ ok: true, status: 204 });
    const [request] = sent;
    if (request === undefined) throw new Error("nothing sent");
    const raw = Buffer.from(String(request.init.body));
    const signature = header(request, "x-fieldq-signature");
    expect(docsVerify(SECRET, raw, signature)).toBe(true);
    expect(verifySignature(SECRET, raw, signature)).toBe(true);
    expect(AlertNoticeBody.parse(JSON.parse(raw.toString()))).toEqual(notice);
    expect(header(request, "idempotency-key")).toBe(notice.idempotencyKey);
    expect(header(request, "x-fieldq-event")).toBe("raised");
    expect(header(request, "content-type")).toBe("application/json");
    expect(header(request, "user-agent")).toMatch(/^fieldq/);
    expect(request.init.method).toBe("POST");
    expect(request.init.redirect).toBe("manual");
  });

  it("fails for another secret, a changed byte, or the body re-serialized", () => {
    const body = JSON.stringify(sampleNotice());
    const signature = signBody(SECRET, body);
    expect(verifySignature(`${SECRET}x`, body, signature)).toBe(false);
    expect(verifySignature(SECRET, body.replace("critical", "Critical"), signature)).toBe(false);
    expect(verifySignature(SECRET, JSON.stringify(JSON.parse(body), null, 2), signature)).toBe(false);
    expect(verifySignature(SECRET, body, undefined)).toBe(false);
    expect(verifySignature(SECRET, body, "sha256=00")).toBe(false);
  });
});

describe("webhook answers", () => {
  const send = async (response: () => Response) => {
    const { fake } = recordingFetch(response);
    const target = webhookTarget({
      name: "webhook",
      url: "http://receiver.test/hook",
      secret: SECRET,
      fetch: fake,
      now: () => Date.UTC(2026, 0, 1),
    });
    return target.send(sampleNotice(), never);
  };

  it.each([400, 401, 403, 404, 410, 422])("takes %i as a refusal for good", async (status) => {
    expect(await send(() => new Response("no", { status }))).toMatchObject({
      ok: false,
      permanent: true,
      status,
    });
  });

  it.each([408, 429, 500, 502, 503])("tries %i again", async (status) => {
    expect(await send(() => new Response("later", { status }))).toMatchObject({
      ok: false,
      permanent: false,
      status,
    });
  });

  it("honours Retry-After in seconds and as a date", async () => {
    const seconds = await send(() => new Response(null, { status: 503, headers: { "retry-after": "120" } }));
    expect(seconds).toMatchObject({ ok: false, retryAfterMs: 120_000 });
    const date = await send(
      () => new Response(null, { status: 429, headers: { "retry-after": "Thu, 01 Jan 2026 00:00:30 GMT" } }),
    );
    expect(date).toMatchObject({ ok: false, retryAfterMs: 30_000 });
  });

  it("does not follow a redirect", async () => {
    const outcome = await send(
      () => new Response(null, { status: 301, headers: { location: "http://elsewhere.test/" } }),
    );
    expect(outcome).toMatchObject({ ok: false, permanent: false, status: 301 });
    expect(outcome.ok === false && outcome.error).toContain("redirects are not followed");
  });

  it("answers a connection failure as a value, to be tried again", async () => {
    const outcome = await send(() => {
      throw new TypeError("fetch failed", { cause: { code: "ECONNREFUSED" } });
    });
    expect(outcome).toEqual({ ok: false, permanent: false, status: null, error: "ECONNREFUSED" });
  });
});
