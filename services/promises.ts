import type { ServiceBag } from "./bag.js";

// service promises per model, their daily compliance and error budgets (GET /api/v1/promises). STUB: being built (issue 13).

// biome-ignore lint/suspicious/noEmptyInterface: filled in by issue 13
export interface PromiseService {}

export function createPromiseService(_bag: ServiceBag): PromiseService {
  return {};
}
