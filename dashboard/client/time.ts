// Times arrive as UTC text in <time datetime> (components.tsx When); here they read in the viewer's own zone,
// with the UTC time kept in the title for hovering.

const FORMATS: Record<string, Intl.DateTimeFormatOptions> = {
  datetime: { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" },
  date: { year: "numeric", month: "short", day: "numeric" },
  time: { hour: "2-digit", minute: "2-digit", second: "2-digit" },
};

/** One formatter per format: making one costs more than formatting (a silence page has hundreds of times). */
const formatters = new Map<string, Intl.DateTimeFormat>();
const formatterOf = (name: string) => {
  let formatter = formatters.get(name);
  if (formatter === undefined) {
    formatter = new Intl.DateTimeFormat(undefined, FORMATS[name] ?? FORMATS.datetime);
    formatters.set(name, formatter);
  }
  return formatter;
};

export function localTimes(root: ParentNode): void {
  for (const el of root.querySelectorAll<HTMLTimeElement>("time[datetime]:not([data-local])")) {
    const at = new Date(el.dateTime);
    if (Number.isNaN(at.getTime())) continue;
    el.textContent = formatterOf(el.dataset.format ?? "datetime").format(at);
    el.title = `${at.toISOString().slice(0, 19).replace("T", " ")} UTC`;
    el.dataset.local = "";
  }
}
