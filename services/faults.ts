import type { FaultRecord } from "../contract/api/faults.js";
import { UNKNOWN } from "../contract/messages.js";
import { err, ok, type Result } from "../contract/result.js";
import { iso } from "../contract/time.js";
import type { FaultRow } from "../storage/device-queries.js";
import type { FaultQueries, FaultQuery } from "../storage/fault-queries.js";
import type { DeviceDirectory } from "./device-directory.js";

// The fault list: newest first, one row more than asked to know whether another page follows. A device
// the directory does not know is an error, like GET /devices/{id}, not an empty page.

export type Page<T> = { items: T[]; nextOffset: number | null };

/** A fault as the API shows it: device time, receive time beside it. */
export function faultRecord(row: FaultRow): FaultRecord {
  return {
    device: row.device ?? UNKNOWN,
    kind: row.kind ?? UNKNOWN,
    model: row.model ?? UNKNOWN,
    firmware: row.firmware ?? UNKNOWN,
    region: row.region ?? UNKNOWN,
    code: row.code ?? UNKNOWN,
    severity: row.severity ?? UNKNOWN,
    component: row.component,
    message: row.message,
    context: row.context,
    ts: iso(row.deviceMs),
    receivedAt: iso(row.receivedMs),
  };
}

export type FaultServiceOptions = { reads: Pick<FaultQueries, "faults">; directory: DeviceDirectory };

export type FaultService = ReturnType<typeof createFaultService>;

export function createFaultService({ reads, directory }: FaultServiceOptions) {
  return {
    async listFaults(q: FaultQuery): Promise<Result<Page<FaultRecord>, "unknown_device">> {
      if (q.device !== undefined && (await directory.lookup(q.device)) === undefined)
        return err("unknown_device");
      const rows = await reads.faults({ ...q, rows: q.limit + 1 });
      const items = rows.slice(0, q.limit).map(faultRecord);
      return ok({ items, nextOffset: rows.length > q.limit ? q.offset + q.limit : null });
    },
  };
}
