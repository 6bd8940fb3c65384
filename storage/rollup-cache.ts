// Renamed storage/rollup-reader.ts; this re-export stays until start-stack, bench/api and the stores import
// from there.

export { alignHours, type Window } from "../contract/time.js";
export {
  createRollupReader as createRollupCache,
  type RollupReader as RollupCache,
  type RollupView,
  type SumQuery,
} from "./rollup-reader.js";
