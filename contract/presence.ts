// A device's presence as fieldq reports it: online, offline (its last presence change said so and it is not
// overdue), or silent (no report for longer than its expected interval allows, whatever presence says).

export const PRESENCE_STATUSES = ["online", "offline", "silent"] as const;
export type PresenceStatus = (typeof PRESENCE_STATUSES)[number];
