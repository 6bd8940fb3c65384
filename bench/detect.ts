import { fork } from "node:child_process";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { formatDuration } from "../contract/time.js";
import { listShippedScenarios, loadScenario } from "../device-sim/scenario/parse.js";
import { formatSummaries, share, summarize } from "./detect-report.js";
import { type DetectRun, detectRun } from "./detect-run.js";

// npm run bench:detect -- [--seeds 10] [--scenario NAME]... [--jobs 2]
// Every shipped scenario over N seeds, backfilled, played in memory (bench/detect-sim.ts) and judged by the
// product's own detection rules and `sim score`'s scoring: precision, recall, and the time to detect beside
// the statistical limit (bench/detect-limit.ts). Runs go to --jobs child processes. One table on stdout, then
// one JSON line; progress on stderr. docs/simulator.md ("Detection benchmark") says what it does not cover.

const USAGE = [
  "Usage: npm run bench:detect -- [options]",
  "",
  "Plays every shipped scenario (scenarios/*.yaml) as a backfill, in memory, over several seeds, and scores",
  "what fieldq's detection rules find of its injected problems: precision, recall, median and p90 time to",
  "detect, beside the statistical limit (the earliest an uncorrected exact test on the true cohorts calls it).",
  "",
  "Options:",
  "  --seeds <n>        seeds per scenario: the scenario's own seed and the next n − 1 (default 10)",
  "  --scenario <name>  only this scenario (repeatable; default every shipped one)",
  "  --jobs <n>         runs at once, each in a process of its own (default: cores, at most 2)",
  "  -h, --help         show this help",
  "",
  "Prints one table, then the same figures as one JSON line.",
];

type Job = { scenario: string; seed: number };

/** The child: runs the jobs it is sent, one at a time, and sends each result back. */
function worker() {
  process.on("message", (job: Job | "done") => {
    if (job === "done") {
      process.disconnect();
      return;
    }
    detectRun(job.scenario, job.seed).then(
      (result) => process.send?.({ result }),
      (error: unknown) => process.send?.({ error: error instanceof Error ? error.stack : String(error) }),
    );
  });
}

/** Runs the jobs on `jobs` children, at most one job per child at a time. */
async function runAll(jobs: Job[], parallel: number, onDone: (run: DetectRun) => void): Promise<DetectRun[]> {
  const script = fileURLToPath(import.meta.url);
  const queue = [...jobs];
  const results: DetectRun[] = [];
  const child = () =>
    new Promise<void>((resolve, reject) => {
      const proc = fork(script, ["--worker"], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
      const next = () => {
        const job = queue.shift();
        proc.send(job ?? "done");
        if (job === undefined) resolve();
      };
      proc.on("message", (message: { result: DetectRun } | { error: string }) => {
        if ("error" in message) {
          proc.kill();
          reject(new Error(message.error));
          return;
        }
        results.push(message.result);
        onDone(message.result);
        next();
      });
      proc.on("exit", (code) => {
        if (code !== 0 && code !== null) reject(new Error(`a bench:detect child exited with code ${code}`));
      });
      next();
    });
  await Promise.all(Array.from({ length: Math.min(parallel, jobs.length) }, child));
  return results;
}

async function main(argv: string[]): Promise<number> {
  let values: { seeds?: string; scenario?: string[]; jobs?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        seeds: { type: "string" },
        scenario: { type: "string", multiple: true },
        jobs: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    process.stderr.write(
      `bench:detect: ${error instanceof Error ? error.message : String(error)} (see --help)\n`,
    );
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${USAGE.join("\n")}\n`);
    return 0;
  }
  const seeds = Number(values.seeds ?? "10");
  const parallel = Number(values.jobs ?? String(Math.min(2, availableParallelism())));
  if (!Number.isInteger(seeds) || seeds < 1 || !Number.isInteger(parallel) || parallel < 1) {
    process.stderr.write("bench:detect: --seeds and --jobs must be whole numbers of at least 1\n");
    return 2;
  }
  const names = values.scenario ?? (await listShippedScenarios());
  const jobs: Job[] = [];
  for (const name of names) {
    const loaded = await loadScenario(name);
    if (!loaded.ok) {
      for (const e of loaded.errors) process.stderr.write(`bench:detect: ${e.text}\n`);
      return 2;
    }
    for (let i = 0; i < seeds; i++) jobs.push({ scenario: name, seed: loaded.scenario.seed + i });
  }
  const started = performance.now();
  let done = 0;
  const results = await runAll(jobs, parallel, (run) => {
    done += 1;
    process.stderr.write(
      `bench:detect: ${done}/${jobs.length} ${run.scenario} seed ${run.seed}: precision ${share(run.score.precision)}, recall ${share(run.score.recall)} (${formatDuration(run.elapsedMs)})\n`,
    );
  });
  const summaries = names.map((name) =>
    summarize(
      name,
      results.filter((r) => r.scenario === name).sort((a, b) => a.seed - b.seed),
    ),
  );
  process.stdout.write(`${formatSummaries(summaries).join("\n")}\n`);
  process.stdout.write(
    `${JSON.stringify({ bench: "detect", seeds, elapsedMs: Math.round(performance.now() - started), scenarios: summaries })}\n`,
  );
  return 0;
}

if (process.argv.includes("--worker")) worker();
else
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`bench:detect: ${error instanceof Error ? error.stack : String(error)}\n`);
      process.exitCode = 1;
    },
  );
