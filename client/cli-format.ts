/**
 * Text output for `pay`: money, times, aligned tables, and the two ways of printing a result
 * (for people, or one JSON document for scripts).
 */

/** The number of minor-unit digits of a currency (2 for EUR, 0 for JPY, 3 for BHD). */
function minorDigits(currency: string): number {
  try {
    const format = new Intl.NumberFormat('en', { style: 'currency', currency });
    return format.resolvedOptions().maximumFractionDigits ?? 2;
  } catch {
    return 2;
  }
}

/** Formats minor units exactly, with integer arithmetic: `2500, EUR` → `25.00 EUR`. */
export function formatMoney(minor: number, currency: string): string {
  const digits = minorDigits(currency);
  const sign = minor < 0 ? '-' : '';
  const magnitude = Math.abs(minor);
  if (digits === 0) return `${sign}${magnitude} ${currency}`;
  const scale = 10 ** digits;
  const whole = Math.floor(magnitude / scale);
  const fraction = String(magnitude % scale).padStart(digits, '0');
  return `${sign}${whole}.${fraction} ${currency}`;
}

/** `HH:MM:SS.mmm` in UTC. */
export function formatClock(epochMs: number): string {
  return new Date(epochMs).toISOString().slice(11, 23);
}

/** Left-aligned columns, two spaces apart; the last column is not padded. */
export function formatTable(rows: readonly (readonly string[])[], indent = '  '): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, index) => {
      widths[index] = Math.max(widths[index] ?? 0, cell.length);
    });
  }
  return rows
    .map((row) =>
      (indent + row.map((cell, index) => cell.padEnd(widths[index] ?? 0)).join('  ')).trimEnd(),
    )
    .join('\n');
}

/** Wraps text at word boundaries to `width` columns; later lines are prefixed with `indent`. */
export function wrapText(text: string, width: number, indent = ''): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(line);
  return lines.join(`\n${indent}`);
}

/** Where a command writes its result: text for people, or exactly one JSON document. */
export interface Output {
  readonly json: boolean;
  /** A line of human-readable output (ignored in JSON mode). */
  text(line: string): void;
  /** Progress and warnings on stderr (ignored in JSON mode). */
  progress(line: string): void;
  /** The JSON document (ignored in text mode). */
  document(value: unknown): void;
}

export function createOutput(json: boolean): Output {
  return {
    json,
    text: (line) => {
      if (!json) process.stdout.write(`${line}\n`);
    },
    progress: (line) => {
      if (!json) process.stderr.write(`${line}\n`);
    },
    document: (value) => {
      if (json) process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
    },
  };
}
