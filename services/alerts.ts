import type { ServiceBag } from "./bag.js";

// alerts, their delivery and acknowledgement (GET /api/v1/alerts). STUB: being built (issue 13).

// biome-ignore lint/suspicious/noEmptyInterface: filled in by issue 13
export interface AlertService {}

export function createAlertService(_bag: ServiceBag): AlertService {
  return {};
}
