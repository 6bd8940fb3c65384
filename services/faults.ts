import type { FaultRecord } from "../contract/api/faults.js";
import { err, ok, type Result } from "../contract/result.js";
import type { FaultQueries, FaultQuery } from "../storage/fault-queries.js";
import type { DeviceDirectory } from "./device-directory.js";
import { faultRecord, type Page } from "./devices.js";

// The fault list: newest first, one row more than asked to know whether another page follows. A device
// the directory does not know is an error, like GET /devices/{id}, not an empty page.

export type FaultServiceOptions = { reads: Pick<FaultQueries, "faults">; directory: DeviceDirectory };

export type FaultService = ReturnType<typeof createFaultService>;

export function createFaultService({ reads, directory }: FaultServiceOptions) {
  return {
    async listFaults(q: FaultQuery): Promise<Result<Page<FaultRecord>, "unknown_device">> {
      const device = q.device === undefined ? undefined : await directory.lookup(q.device);
      if (q.device !== undefined && device === undefined) return err("unknown_device");
      const rows = await reads.faults({ ...q, rows: q.limit + 1 });
      const items = rows
        .slice(0, q.limit)
        .map((r) => faultRecord(r, device ?? (r.device === null ? undefined : directory.get(r.device))));
      return ok({ items, nextOffset: rows.length > q.limit ? q.offset + q.limit : null });
    },
  };
}
