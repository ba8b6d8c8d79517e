/** Command-line flags: `--name value` or `--name=value`, each declared with its kind. */

/** An error the CLI reports as one line and a non-zero exit, without a stack trace. */
export class CliError extends Error {
  constructor(message: string, readonly exitCode = 2) {
    super(message);
  }
}

/** A flag: its kind, and what --help says of it (the value's name, and a sentence). */
export type FlagSpec = { value: string; help: string } & (
  | { kind: 'int'; min?: number }
  | { kind: 'number'; min?: number }
  | { kind: 'string' }
  | { kind: 'flag' }
  | { kind: 'choice'; choices: readonly string[] });

/** The --help text of a command: usage, what it does, and each flag with its description. */
export function helpText(usage: string, summary: string, spec: Record<string, FlagSpec>): string {
  const rows = Object.entries(spec).map(([name, f]) => [`  --${name}${f.value ? ` ${f.value}` : ''}`, f.kind === 'choice' ? `${f.choices.join('|')}: ${f.help}` : f.help]);
  const width = Math.max(...rows.map(([l]) => l.length)) + 2;
  return `usage: ${usage}\n${summary}\n\noptions:\n${rows.map(([l, h]) => l.padEnd(width) + h).join('\n')}\n  --help${' '.repeat(Math.max(2, width - 8))}this text`;
}

export function parseFlags<S extends Record<string, FlagSpec>>(argv: string[], spec: S): Partial<Record<keyof S, string | number | boolean>> {
  const out: Partial<Record<keyof S, string | number | boolean>> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new CliError(`unexpected argument '${arg}' (see stablegrad --help)`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    const f = spec[name];
    if (!f) throw new CliError(`unknown option --${name} (see stablegrad --help)`);
    if (f.kind === 'flag') {
      if (eq !== -1) throw new CliError(`option --${name} takes no value`);
      out[name as keyof S] = true;
      continue;
    }
    const raw = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (raw === undefined || (eq === -1 && raw.startsWith('--'))) throw new CliError(`option --${name} needs a value`);
    if (f.kind === 'int' || f.kind === 'number') {
      const v = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(v) || (f.kind === 'int' && !Number.isInteger(v)) || (f.min !== undefined && v < f.min))
        throw new CliError(`option --${name} expects ${f.kind === 'int' ? 'an integer' : 'a number'}${f.min !== undefined ? ` >= ${f.min}` : ''} but received '${raw}'`);
      out[name as keyof S] = v;
    } else if (f.kind === 'choice') {
      if (!f.choices.includes(raw)) throw new CliError(`option --${name} expects one of ${f.choices.join(', ')} but received '${raw}'`);
      out[name as keyof S] = raw;
    } else {
      out[name as keyof S] = raw;
    }
  }
  return out;
}
