import type { Result } from "../contract/result.js";
import type { ServiceBag } from "./bag.js";

// service promises per model, their daily compliance and error budgets (GET /api/v1/promises). STUB: being
// built (issue 13).

export type PromiseServiceOptions = {
  /** The promises file (FIELDQ_PROMISES); undefined: nothing promised. */
  file: string | undefined;
};

export interface PromiseService {
  /** Reads the promises file; the stack refuses to start on an error (file:line: message). */
  load(): Promise<Result<void, string>>;
}

export function createPromiseService(_bag: ServiceBag, _options: PromiseServiceOptions): PromiseService {
  return { load: async () => ({ ok: true, value: undefined }) };
}
