// Progress of long CLI commands, always on stderr so stdout stays clean for --json and JSONL.
// On a terminal: one bar redrawn in place. Otherwise (CI logs, pipes): a plain line at every 10%
// and at least every `everyMs`. Nothing is printed for work that finishes within `delayMs`, so quick
// commands and tests stay silent.

/** Where progress goes: a writable with an optional isTTY flag (process.stderr by default). */
export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
}

export interface ProgressOptions {
  /** Total units of work (problems, lines, tensors); 0 draws a count without a bar (no count either when `unit` is ''). */
  total: number;
  /** What is counted, e.g. 'problems'. */
  unit: string;
  /** Printed first on each line, e.g. 'eval arith'. */
  label: string;
  stream?: ProgressStream;
  /** Print nothing until this many ms have passed (default 1500). */
  delayMs?: number;
  /** Plain-line mode: print at least this often while work advances (default 15000 ms). */
  everyMs?: number;
  /** Forces the TTY (bar) or plain mode; default: the stream's isTTY. */
  tty?: boolean;
  /** Extra text after the counts (e.g. running accuracy), computed when a line is drawn. */
  detail?: () => string;
  /** Clock in ms (tests). */
  now?: () => number;
  /** false: print nothing at all (e.g. --quiet). */
  enabled?: boolean;
}

export interface Progress {
  /** `n` more units are done. */
  tick(n?: number): void;
  /** Prints a line of the command's own log on the same stream without breaking the bar. */
  note(line: string): void;
  /** Ends the display: the bar gets its final state and a newline (only if anything was shown). */
  done(): void;
}

function seconds(ms: number): string {
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  return `${m}m${String(Math.round(s - 60 * m)).padStart(2, '0')}s`;
}

/** Starts a progress display (see the file comment for when and how it prints). */
export function startProgress(o: ProgressOptions): Progress {
  const stream = o.stream ?? process.stderr;
  const now = o.now ?? (() => performance.now());
  const tty = o.tty ?? Boolean(stream.isTTY);
  const delayMs = o.delayMs ?? 1500;
  const everyMs = o.everyMs ?? 15_000;
  const enabled = o.enabled ?? true;
  const t0 = now();
  let done = 0;
  let shown = false;
  let lastDraw = -Infinity;
  let lastDecile = -1;
  let lastDone = -1;

  const text = (): string => {
    const elapsed = now() - t0;
    const parts: string[] = [];
    if (o.total > 0) {
      const frac = Math.min(1, done / o.total);
      const width = 24;
      const fill = Math.round(frac * width);
      if (tty) parts.push(`[${'#'.repeat(fill)}${'-'.repeat(width - fill)}]`);
      parts.push(`${String(done).padStart(String(o.total).length)}/${o.total} ${o.unit}`, `${(frac * 100).toFixed(0).padStart(3)}%`);
      parts.push(seconds(elapsed));
      if (done > 0 && done < o.total) parts.push(`eta ${seconds((elapsed / done) * (o.total - done))}`);
    } else if (o.unit) {
      parts.push(`${done} ${o.unit}`, seconds(elapsed));
    } else {
      parts.push(`working, ${seconds(elapsed)} elapsed`);
    }
    const extra = o.detail?.();
    if (extra) parts.push(extra);
    return `${o.label}: ${parts.join('  ')}`;
  };

  const draw = (final: boolean): void => {
    if (!enabled) return;
    const t = now();
    if (!shown && t - t0 < delayMs && !(final && shown)) return;
    if (tty) {
      if (!final && t - lastDraw < 100) return; // at most 10 redraws/s
      stream.write(`\r${text()}\x1b[K`);
      shown = true;
      lastDraw = t;
      return;
    }
    const decile = o.total > 0 ? Math.floor((10 * done) / o.total) : -1;
    if ((final && done !== lastDone) || decile !== lastDecile || t - lastDraw >= everyMs) {
      stream.write(`${text()}\n`);
      lastDone = done;
      shown = true;
      lastDraw = t;
      lastDecile = decile;
    }
  };

  // Redraws while nothing finishes (elapsed time and eta keep moving; a stalled item stays visible).
  const timer = enabled && !o.now ? setInterval(() => draw(false), tty ? 1000 : everyMs) : undefined;
  timer?.unref();

  return {
    tick(n = 1) {
      done += n;
      draw(false);
    },
    note(line: string) {
      if (tty && shown) {
        stream.write(`\r\x1b[K${line}\n`);
        lastDraw = -Infinity;
        draw(false);
      } else stream.write(`${line}\n`);
    },
    done() {
      if (timer) clearInterval(timer);
      if (!shown) return;
      draw(true);
      if (tty) stream.write('\n');
    },
  };
}

/**
 * For long steps that report no counts (conversion, quantization): after `delayMs`, the elapsed time
 * on stderr, redrawn each second on a terminal and every 15 s otherwise, while the event loop is free.
 */
export function startActivity(label: string, o: Pick<ProgressOptions, 'stream' | 'tty' | 'enabled' | 'delayMs'> = {}): Progress {
  return startProgress({ ...o, total: 0, unit: '', label });
}
