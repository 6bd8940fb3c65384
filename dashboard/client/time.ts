// Times arrive as UTC text in <time datetime> (components.tsx When); here they read in the viewer's own zone,
// with the UTC time kept in the title for hovering.

const FORMATS: Record<string, Intl.DateTimeFormatOptions> = {
  datetime: { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" },
  date: { year: "numeric", month: "short", day: "numeric" },
  time: { hour: "2-digit", minute: "2-digit", second: "2-digit" },
};

export function localTimes(root: ParentNode): void {
  for (const el of root.querySelectorAll<HTMLTimeElement>("time[datetime]:not([data-local])")) {
    const at = new Date(el.dateTime);
    if (Number.isNaN(at.getTime())) continue;
    const format = FORMATS[el.dataset.format ?? "datetime"] ?? FORMATS.datetime;
    el.textContent = new Intl.DateTimeFormat(undefined, format).format(at);
    el.title = `${at.toISOString().slice(0, 19).replace("T", " ")} UTC`;
    el.dataset.local = "";
  }
}
