import type { ServiceBag } from "./bag.js";

// the management review report (GET /api/v1/reports/review). STUB: being built (issue 13).

// biome-ignore lint/suspicious/noEmptyInterface: filled in by issue 13
export interface ReviewService {}

export function createReviewService(_bag: ServiceBag): ReviewService {
  return {};
}
