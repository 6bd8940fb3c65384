import type { ServiceBag } from "./bag.js";

// remote commands (POST/GET /api/v1/devices/{id}/commands, bulk to a cohort). STUB: being built (issue 13).

// biome-ignore lint/suspicious/noEmptyInterface: filled in by issue 13
export interface CommandService {}

export function createCommandService(_bag: ServiceBag): CommandService {
  return {};
}
