import type { AlertNotice } from "./types.js";

// What a delivery target is to alerts/deliver.ts: a name and a way to send one notice. alerts/webhook.ts and
// alerts/mqtt-target.ts implement it; alerts/targets.ts builds them from TargetSpecs.

/** How one attempt went. permanent: the receiver refused the notice for good (no retry). */
export type SendOutcome =
  | { ok: true; status: number | null }
  | {
      ok: false;
      permanent: boolean;
      status: number | null;
      error: string;
      /** The receiver asked to wait this long (Retry-After). */
      retryAfterMs?: number | undefined;
    };

export type Target = {
  name: string;
  /** One attempt; the signal aborts it (the per-attempt timeout, or shutdown). Never throws. */
  send(notice: AlertNotice, signal: AbortSignal): Promise<SendOutcome>;
};
