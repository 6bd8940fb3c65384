import type { ServiceBag } from "./bag.js";

// customer feedback the support desk records (POST /api/v1/feedback). STUB: being built (issue 13).

// biome-ignore lint/suspicious/noEmptyInterface: filled in by issue 13
export interface FeedbackService {}

export function createFeedbackService(_bag: ServiceBag): FeedbackService {
  return {};
}
