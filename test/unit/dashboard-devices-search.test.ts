import { describe, expect, it } from "vitest";
import { devicesHref, emptyText, filtersOf } from "../../dashboard/pages/devices.js";

const query = (params: Record<string, string>) => (name: string) => params[name];

describe("the device search's URL", () => {
  it("keeps the filters the API takes and drops the rest", () => {
    expect(
      filtersOf(query({ q: "  fb0594 ", status: "silent", model: "FQ-Modem 7590", offset: "50" })),
    ).toEqual({
      q: "fb0594",
      status: "silent",
      model: "FQ-Modem 7590",
      offset: 50,
    });
    expect(filtersOf(query({ q: " ", status: "asleep", offset: "-3" }))).toEqual({ offset: 0 });
  });

  it("links a page of the same search, on this page's path", () => {
    const filters = filtersOf(query({ q: "M7590 B2", status: "online" }));
    expect(devicesHref(filters, 50)).toBe("/devices?q=M7590+B2&status=online&offset=50");
    expect(devicesHref({ offset: 0 })).toBe("/devices");
    expect(devicesHref({ offset: 0 }, 50, "/silence")).toBe("/silence?offset=50");
  });

  it("says what was searched when nothing matches", () => {
    expect(emptyText({ q: "FB0X", status: "silent", offset: 0 })).toMatch(
      /^No device whose id, serial or model contains “FB0X”, that are silent\./,
    );
    expect(emptyText({ offset: 0 })).toBe("No device has reported yet.");
  });
});
