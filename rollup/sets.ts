// Moved to storage/rollup-schema.ts (the storage format belongs beside storage/schema.ts). This re-export
// stays only until storage/issue-store.ts, storage/health-store.ts, storage/fleet-store.ts and
// ingest/writer.ts import from there; then it is deleted.

export { DAY_MS, HOUR_MS } from "../contract/time.js";
export * from "../storage/rollup-schema.js";
