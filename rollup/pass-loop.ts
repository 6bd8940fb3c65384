// One pass at a time, on demand and on a timer: what the settle and regression runners share. A poke during
// a pass asks for one more pass after it; `running` is cleared in the same step as the last check, so no
// poke can fall between them unheard. `pass()` must not throw (it logs its own failures).

export abstract class PassLoop {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(private readonly everyMs: number) {}

  protected abstract pass(): Promise<void>;

  /** A pass now, and one every intervalMs. */
  start(): void {
    if (this.timer !== undefined) return;
    this.stopped = false;
    this.timer = setInterval(() => void this.poke(), this.everyMs);
    this.timer.unref();
    void this.poke();
  }

  /** Waits for the pass under way; pokes after it do nothing. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Asks for a pass; resolves once a pass that started after the call is done. Never rejects. */
  poke(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.again = true;
    this.running ??= this.loop();
    return this.running;
  }

  private async loop(): Promise<void> {
    try {
      while (this.again && !this.stopped) {
        this.again = false;
        await this.pass();
      }
    } finally {
      this.running = undefined;
    }
  }
}
