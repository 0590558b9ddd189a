/**
 * The built binary (bin/backupctl.js -> dist/), as users, cron and CI run it: help and
 * version, usage errors, the stdout/stderr contract of --json and --quiet, colours, and a
 * full create -> list -> show round trip.
 */
import { execa } from 'execa';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, baseEnv, REPO_ROOT, runBin, type CliOutcome } from '../helpers/cli.js';
import { failureLines, listFiles, removeTempDirs, tempDir } from '../helpers/failure-kit.js';
import { loadTricky } from '../helpers/fixtures.js';
import { connectProvided, uniqueName } from '../helpers/pg.js';

const cluster = connectProvided();
const db = uniqueName('e2e');
// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[/;
let cwd: string;
let storage: string;

const packageVersion = async (): Promise<string> =>
  (JSON.parse(await readFile(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

function env(extra: Record<string, string | undefined> = {}): Record<string, string> {
  const merged = baseEnv({ HOME: cwd, ...cluster.env(db), ...extra });
  return Object.fromEntries(Object.entries(merged).filter(([, v]) => v !== undefined)) as Record<string, string>;
}

async function bin(args: string[], extra: Record<string, string | undefined> = {}): Promise<CliOutcome> {
  return runBin(args, { env: env(extra), cwd });
}

beforeAll(async () => {
  assertBuilt();
  cwd = await tempDir('cwd');
  storage = await tempDir('st');
  await loadTricky(cluster, db);
});

afterAll(async () => {
  await cluster.dropDatabase(db);
  await removeTempDirs();
});

describe('help and version', () => {
  it('--help exits 0 and documents the commands, the environment and the exit codes', async () => {
    const out = await bin(['--help']);
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/^Usage: backupctl/);
    for (const command of ['create', 'list', 'show']) expect(out.stdout).toMatch(new RegExp(`^\\s+${command}\\b`, 'm'));
    expect(out.stdout).toContain('Exit codes:');
    for (const code of ['0', '1', '2', '3', '4', '5', '130']) expect(out.stdout).toMatch(new RegExp(`^\\s+${code}\\s+\\S`, 'm'));
    expect(out.stdout).toMatch(/examples/i);
    expect(out.stdout).toContain('NO_COLOR');
    expect(out.stderr).toBe('');
  });

  it('create --help exits 0 with its options, examples and the exit codes', async () => {
    const out = await bin(['create', '--help']);
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/^Usage: backupctl create/);
    expect(out.stdout).toContain('--lock-wait-timeout');
    expect(out.stdout).toContain('Examples:');
    expect(out.stdout).toMatch(/^\s+\$ backupctl create/m);
    expect(out.stdout).toContain('Exit codes:');
    expect(out.stdout).toMatch(/^\s+130\s+interrupted/m);
    expect(out.stderr).toBe('');
  });

  it.each([['list'], ['show']])('%s --help exits 0 with examples', async (command) => {
    const out = await bin([command, '--help']);
    expect(out.code).toBe(0);
    expect(out.stdout).toContain('Examples:');
    expect(out.stdout).toContain('Exit codes:');
  });

  it.each([['--version'], ['-V']])('%s prints the version of package.json', async (flag) => {
    const out = await bin([flag]);
    expect(out.code).toBe(0);
    expect(out.stdout.trim()).toBe(await packageVersion());
  });
});

describe('usage errors exit 2', () => {
  it('an unknown command', async () => {
    const out = await bin(['frobnicate']);
    expect(out.code).toBe(2);
    expect(out.stdout).toBe('');
    expect(out.stderr).toMatch(/^error: unknown command 'frobnicate'/m);
  });

  it("a mistyped command: one error line and commander's suggestion in the hint line (and in --json's hint, not its message)", async () => {
    const out = await bin(['lsit']);
    expect(out.code).toBe(2);
    expect(out.stderr.trimEnd()).toBe("error: unknown command 'lsit'\nhint: did you mean list? (run with --help for usage)");
    const json = await bin(['lsit', '--json']);
    expect(JSON.parse(json.stdout)).toEqual({ error: { exitCode: 2, message: "unknown command 'lsit'", hint: 'did you mean list? (run with --help for usage)' } });
  });

  it('an unknown command with --help (after global options too): exit 2, not the main help', async () => {
    for (const argv of [['frobnicate', '--help'], ['--storage', storage, 'frobnicate', '--help']]) {
      const out = await bin(argv);
      expect(out.code).toBe(2);
      expect(out.stdout).toBe('');
      expect(out.stderr).toMatch(/^error: unknown command 'frobnicate'/m);
    }
    // A real command's help, by name or alias, is still exit 0.
    for (const argv of [['list', '--help'], ['--storage', storage, 'ls', '--help']]) expect((await bin(argv)).code).toBe(0);
  });

  it('help <command> is <command> --help; help <typo> is an unknown command (exit 2), not the main help', async () => {
    const byFlag = await bin(['restore', '--help']);
    for (const argv of [['help', 'restore'], ['--storage', storage, 'help', 'restore']]) {
      const out = await bin(argv);
      expect(out.code, out.stderr).toBe(0);
      expect(out.stdout).toBe(byFlag.stdout);
    }
    expect((await bin(['help', 'rm'])).stdout).toMatch(/^Usage: backupctl delete\|rm /);
    const main = await bin(['help']);
    expect(main.code).toBe(0);
    expect(main.stdout).toBe((await bin(['--help'])).stdout);
    const typo = await bin(['help', 'frobnicate']);
    expect(typo.code).toBe(2);
    expect(typo.stdout).toBe('');
    expect(typo.stderr.trimEnd()).toBe("error: unknown command 'frobnicate'\nhint: run with --help for usage");
    // A near miss gets the suggestion a mistyped command gets.
    for (const argv of [['help', 'lsit'], ['lsit', '--help']]) {
      const near = await bin(argv);
      expect(near.code).toBe(2);
      expect(near.stderr.trimEnd()).toBe("error: unknown command 'lsit'\nhint: did you mean list? (run with --help for usage)");
    }
  });

  it('an unknown option', async () => {
    const out = await bin(['create', '--storage', storage, '--frobnicate']);
    expect(out.code).toBe(2);
    expect(out.stdout).toBe('');
    expect(out.stderr).toMatch(/^error: unknown option '--frobnicate'/m);
  });

  it('an unknown global option before the command', async () => {
    const out = await bin(['--frobnicate', 'list']);
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(/unknown option '--frobnicate'/);
  });

  it('an invalid option value', async () => {
    const out = await bin(['create', '--storage', storage, '--lock-wait-timeout', 'soon']);
    expect(out.code).toBe(2);
    const { error } = failureLines(out.stderr, { strict: true });
    expect(error).toMatch(/--lock-wait-timeout/);
  });

  it('a missing argument', async () => {
    const out = await bin(['show']);
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(/missing required argument/);
  });
});

describe('a full round trip with the binary: create -> list -> show latest', () => {
  let created: { id: string } & Record<string, unknown>;
  let createOut: CliOutcome;

  beforeAll(async () => {
    createOut = await bin(['create', '--storage', storage, '--json', '--tag', 'e2e']);
    created = JSON.parse(createOut.stdout) as typeof created;
  });

  it('create --json: exit 0, stdout is exactly one JSON document, progress only on stderr', () => {
    expect(createOut.code, createOut.stderr).toBe(0);
    expect(created.id).toMatch(/^\d{8}T\d{6}Z-[0-9a-f]+$/);
    // One document: it parses whole, and nothing but whitespace follows it.
    expect(createOut.stdout.trim().startsWith('{')).toBe(true);
    expect(createOut.stdout.trim().endsWith('}')).toBe(true);
    expect(createOut.stdout).not.toContain('backing up');
    expect(createOut.stderr).toMatch(/backing up .*@127\.0\.0\.1:\d+\//);
    expect(createOut.stderr).not.toMatch(ANSI);
  });

  it('wrote the artifact and the sidecar, and no temporaries', async () => {
    const files = await listFiles(storage);
    expect(files).toEqual(expect.arrayContaining([expect.stringMatching(new RegExp(`/${created.id}\\.json$`)), expect.stringMatching(new RegExp(`/${created.id}\\.dump\\.zst$`))]));
    expect(files.filter((file) => path.basename(file).startsWith('.'))).toEqual([]);
  });

  it('list shows it (human table on stdout)', async () => {
    const out = await bin(['list', '--storage', storage]);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toContain(created.id);
    expect(out.stdout).toMatch(/ID\s+PROFILE/);
    expect(out.stdout).not.toMatch(ANSI);
  });

  it('list --json is an array holding it', async () => {
    const out = await bin(['list', '--storage', storage, '--json']);
    expect(out.code, out.stderr).toBe(0);
    const listed = JSON.parse(out.stdout) as Array<{ id: string; tags?: string[] }>;
    expect(Array.isArray(listed)).toBe(true);
    expect(listed.map((entry) => entry.id)).toContain(created.id);
  });

  it('list --json of an empty storage is an empty array', async () => {
    const out = await bin(['list', '--storage', await tempDir('empty'), '--json']);
    expect(out.code, out.stderr).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual([]);
  });

  it('show latest is that backup, in text and in JSON', async () => {
    const text = await bin(['show', 'latest', '--storage', storage]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(created.id);
    const json = await bin(['show', 'latest', '--storage', storage, '--json']);
    expect(json.code, json.stderr).toBe(0);
    const shown = JSON.parse(json.stdout) as Record<string, unknown>;
    expect(JSON.stringify(shown)).toContain(created.id);
    expect(JSON.stringify(shown)).toContain('e2e');
  });

  it('show of an unknown id fails with one error line', async () => {
    const out = await bin(['show', '20000101T000000Z-abcdef', '--storage', storage]);
    expect(out.code).not.toBe(0);
    failureLines(out.stderr, { strict: true });
  });

  it('--quiet: a successful create prints nothing at all (cron mails only failures)', async () => {
    const out = await bin(['create', '--storage', storage, '--quiet']);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stderr).toBe('');
    expect(out.stdout).toBe('');
  });

  it('--quiet: a failing run still says why on stderr, and an unhealthy status still prints its report', async () => {
    const failed = await bin(['show', 'latest', '--storage', path.join(storage, 'nothing-here'), '--quiet']);
    expect(failed.code).toBe(2);
    expect(failed.stdout).toBe('');
    failureLines(failed.stderr, { strict: true });
    const unhealthy = await bin(['status', '--storage', storage, '--max-verify-age', '1s', '--quiet']);
    expect(unhealthy.code).toBe(5);
    expect(unhealthy.stdout).toContain('UNHEALTHY');
  });

  it('--quiet --json: nothing on stderr, one JSON document on stdout', async () => {
    const out = await bin(['create', '--storage', storage, '--quiet', '--json']);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stderr).toBe('');
    expect(JSON.parse(out.stdout)).toMatchObject({ id: expect.any(String) });
  });

  it('--log-format json: every stderr line is a JSON object, stdout still the one result', async () => {
    const out = await bin(['create', '--storage', storage, '--json', '--log-format', 'json']);
    expect(out.code, out.stderr).toBe(0);
    const lines = out.stderr.split('\n').filter(Boolean);
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(() => JSON.parse(line) as unknown, line).not.toThrow();
    expect(JSON.parse(out.stdout)).toMatchObject({ id: expect.any(String) });
  });

  it('--log-format json: the error that ends a run is a JSON line too (level error, hint, exit code), so jq can read every line', async () => {
    const out = await bin(['--log-format', 'json', 'create', '--storage', storage], { PGDATABASE: 'no_such_database_here' });
    expect(out.code).toBe(2);
    const lines = out.stderr.split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.at(-1)).toMatchObject({ level: 'error', message: expect.stringMatching(/database "no_such_database_here" does not exist/), hint: expect.any(String), exitCode: 2 });
  });
});

describe('colours', () => {
  it('FORCE_COLOR colours the output; --no-color still wins over it', async () => {
    const forced = await bin(['show', 'latest', '--storage', storage], { FORCE_COLOR: '1', NO_COLOR: undefined });
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stdout).toMatch(ANSI);
    const off = await bin(['show', 'latest', '--storage', storage, '--no-color'], { FORCE_COLOR: '1', NO_COLOR: undefined });
    expect(off.code).toBe(0);
    expect(off.stdout + off.stderr).not.toMatch(ANSI);
    const failed = await bin(['show', 'nope', '--storage', storage, '--no-color'], { FORCE_COLOR: '1' });
    expect(failed.stderr).toMatch(/^error: /);
    expect(failed.stderr).not.toMatch(ANSI);
  });

  /** Runs the binary on a terminal (a pty from script(1)); stdout and stderr arrive mixed. */
  async function onTerminal(args: string[], extra: Record<string, string | undefined>): Promise<string> {
    const command = [process.execPath, path.join(REPO_ROOT, 'bin', 'backupctl.js'), ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    const result = await execa('script', ['-qec', command, '/dev/null'], {
      env: { ...env({ NO_COLOR: undefined, FORCE_COLOR: undefined, ...extra }), SHELL: '/bin/sh', TERM: 'xterm' },
      extendEnv: false,
      cwd,
      reject: false,
      stdin: 'ignore',
    });
    return String(result.stdout);
  }
  let scriptWorks = false;
  beforeAll(async () => {
    scriptWorks = (await execa('script', ['-qec', 'true', '/dev/null'], { reject: false, stdin: 'ignore' })).exitCode === 0;
  });

  it('on a terminal: coloured by default, plain with NO_COLOR=1 or --no-color (text and errors)', async (ctx) => {
    if (!scriptWorks) ctx.skip('script(1) cannot open a pty here');
    const coloured = await onTerminal(['show', 'latest', '--storage', storage], {});
    expect(coloured).toContain('Backup');
    expect(coloured).toMatch(ANSI);
    for (const [args, extra] of [
      [['show', 'latest', '--storage', storage], { NO_COLOR: '1' }],
      [['show', 'latest', '--storage', storage, '--no-color'], {}],
      [['list', '--storage', storage], { NO_COLOR: '1' }],
      [['show', 'nope', '--storage', storage], { NO_COLOR: '1' }],
    ] as Array<[string[], Record<string, string>]>) {
      const plain = await onTerminal(args, extra);
      expect(plain.length, args.join(' ')).toBeGreaterThan(0);
      expect(plain, `${args.join(' ')} ${JSON.stringify(extra)}`).not.toMatch(ANSI);
    }
  });
});
