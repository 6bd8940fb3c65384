import type { AffectingIssue } from "../../contract/api/devices.js";
import { createDeviceDirectory } from "../../services/device-directory.js";
import { createDeviceService } from "../../services/devices.js";
import { createFaultService } from "../../services/faults.js";
import { createMemoryDeviceReads, type MemoryFleet } from "../../storage/device-reads-memory.js";

/** The device and fault services over hand-made rows, for createApp in unit tests of the routes above them. */
export function memoryDeviceServices(
  fleet: MemoryFleet = {},
  options: { now?: () => number; issuesForDevice?: (id: string) => Promise<AffectingIssue[]> } = {},
) {
  const reads = createMemoryDeviceReads(fleet);
  const directory = createDeviceDirectory({
    load: reads.deviceStates,
    refreshEveryMs: 0,
    ...(options.now === undefined ? {} : { now: options.now }),
  });
  // A directory that cannot load (an unreachable fleet) fails the first request, not the test's setup.
  directory.ready().catch(() => undefined);
  return {
    devices: createDeviceService({ reads, directory, ...options }),
    faults: createFaultService({ reads, directory }),
  };
}
