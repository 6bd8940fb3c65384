import mqtt from "mqtt";
import { deviceKey } from "../../contract/device-key.js";
import { faultTopic, helloTopic } from "../../contract/topics.js";
import { TEST_SECRET } from "./stack.js";

/** A printer's hello; fields overridden per test. */
export const printerHello = (id: string, overrides: Record<string, string> = {}) => ({
  kind: "printer",
  model: "FQ-Print Mk3",
  firmware: "1.4.0",
  hardware: "A",
  serial: `SN-${id}`,
  region: "eu-west",
  isp: "Telco",
  ...overrides,
});

/**
 * Devices that each connect to the broker, say hello (retained) and report one fault now, then disconnect: an
 * issue once the rollups have run.
 */
export async function faultyDevices(
  mqttPort: number,
  ids: readonly string[],
  fault: { code: string; severity?: string },
  hello: Record<string, string> = {},
): Promise<void> {
  for (const [i, id] of ids.entries()) {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, {
      clientId: id,
      username: id,
      password: deviceKey(TEST_SECRET, id),
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    await client.publishAsync(helloTopic(id), JSON.stringify(printerHello(id, hello)), {
      qos: 1,
      retain: true,
    });
    const body = { ts: Date.now(), seq: i + 1, code: fault.code, severity: fault.severity ?? "error" };
    await client.publishAsync(faultTopic(id), JSON.stringify(body), { qos: 1 });
    await client.endAsync();
  }
}
