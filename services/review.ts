import type { ServiceBag } from "./bag.js";
import type { FeedbackService } from "./feedback.js";
import type { PromiseService } from "./promises.js";

// the management review report (GET /api/v1/reports/review). STUB: being built (issue 13).

// biome-ignore lint/suspicious/noEmptyInterface: filled in by issue 13
export interface ReviewService {}

export type ReviewServiceDeps = { promises: PromiseService; feedback: FeedbackService };

export function createReviewService(_bag: ServiceBag, _deps: ReviewServiceDeps): ReviewService {
  return {};
}
