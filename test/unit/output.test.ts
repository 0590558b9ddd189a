import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { SidecarSchema } from '../../src/catalog/sidecar-schema.js';
import type { CreateResult, ListResult, ShowResult } from '../../src/core/results.js';
import { BackupctlError, ExitCode } from '../../src/errors.js';
import {
  formatAge,
  formatBytes,
  formatCount,
  formatDuration,
  formatRate,
  formatTimestamp,
  sanitize,
} from '../../src/output/format.js';
import {
  createJson,
  listJson,
  renderCreate,
  renderError,
  renderJson,
  renderList,
  renderShow,
  showJson,
  writeJson,
  JsonArray,
} from '../../src/output/render.js';
import { createReporter } from '../../src/output/reporter.js';
import { createStyle, wantsColor } from '../../src/output/style.js';
import { displayWidth, renderKeyValues, renderTable, stripAnsi } from '../../src/output/table.js';
import { sampleSidecar, type SidecarOverrides } from '../helpers/sidecar-fixture.js';

// eslint-disable-next-line no-control-regex
const ESC = /\u001b/;
const plain = createStyle({ color: false });
const colored = createStyle({ color: true });
const NOW = new Date('2026-11-23T17:05:09Z');
const ID = '20261123T140509Z-a1b2c3';
const SHA_A = 'a'.repeat(64);
const SHA_B = 'b'.repeat(64);

/** The values the renderings below show and assert on. */
const SHOWN: SidecarOverrides = {
  id: ID,
  profile: 'prod',
  startedAt: '2026-11-23T14:05:09Z',
  finishedAt: '2026-11-23T14:05:21Z',
  durationMs: 12_345,
  engine: { serverVersion: '16.4', serverVersionNum: 160004, pgDumpVersion: '17.2' },
  source: { host: 'db.example.com', port: 5432, database: 'app' },
  database: { name: 'app', sizeBytes: 52_428_800 },
  dump: { excludeSchemas: ['audit'], lockWaitTimeout: '30s', snapshot: '00000003-00000002-1', tocEntries: 87 },
  artifact: { file: `${ID}.dump`, bytes: 1_288_490_189, sha256: SHA_A },
  globals: { status: 'included', file: `${ID}.globals.sql`, bytes: 2048, sha256: SHA_B, rolePasswords: false, stages: [] },
  tables: [
    { schema: 'public', name: 'users', rows: 1200 },
    { schema: 'public', name: 'orders', rows: 1_234_567 },
  ],
  tags: ['nightly', 'pre-migration'],
  note: 'before the 3.0 migration',
  verifications: [
    { at: '2026-11-23T15:05:09Z', level: 'checksum', result: 'passed', durationMs: 900, mismatches: [] },
    {
      at: '2026-11-23T16:05:09Z',
      level: 'restore',
      result: 'failed',
      durationMs: 65_000,
      serverVersion: '16.4',
      mismatches: ['public.orders: 1234567 rows expected, 1234000 restored'],
      error: 'row counts differ',
    },
  ],
};

describe('format', () => {
  it('formats bytes in binary units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1024)).toBe('1 KiB');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(12.3 * 1024 * 1024)).toBe('12.3 MiB');
    expect(formatBytes(1.02 * 1024 ** 3)).toBe('1.02 GiB');
    expect(formatBytes(123.4 * 1024 * 1024)).toBe('123 MiB');
    expect(formatBytes(1024 * 1024 - 1)).toBe('1 MiB');
    expect(formatBytes(5 * 1024 ** 4)).toBe('5 TiB');
  });

  it('formats durations', () => {
    expect(formatDuration(0)).toBe('0 ms');
    expect(formatDuration(850)).toBe('850 ms');
    expect(formatDuration(999.7)).toBe('1.0 s');
    expect(formatDuration(12_400)).toBe('12.4 s');
    expect(formatDuration(59_960)).toBe('1m 00s');
    expect(formatDuration(185_000)).toBe('3m 05s');
    expect(formatDuration(2 * 3_600_000 + 3 * 60_000 + 20_000)).toBe('2h 03m');
  });

  it('formats ages relative to now', () => {
    const ago = (ms: number): string => formatAge(new Date(NOW.getTime() - ms), NOW);
    expect(ago(2000)).toBe('just now');
    expect(ago(45_000)).toBe('45 s ago');
    expect(ago(5 * 60_000 + 10_000)).toBe('5 min ago');
    expect(ago(3 * 3_600_000 + 1)).toBe('3 h ago');
    expect(ago(2 * 86_400_000 + 5)).toBe('2 d ago');
    expect(ago(-5 * 60_000)).toBe('in 5 min');
  });

  it('formats rates, timestamps and counts', () => {
    expect(formatRate(45.2 * 1024 * 1024, 1000)).toBe('45.2 MiB/s');
    expect(formatRate(98 * 1024 * 1024 * 10, 10_000)).toBe('98 MiB/s');
    expect(formatRate(100, 0)).toBe('-');
    expect(formatTimestamp('2026-11-23T14:05:09.123Z')).toBe('2026-11-23 14:05:09Z');
    expect(formatTimestamp('2026-11-23T15:05:09+01:00')).toBe('2026-11-23 14:05:09Z');
    expect(formatTimestamp('2026-11-23T14:05:09Z', { seconds: false })).toBe('2026-11-23 14:05Z');
    expect(formatTimestamp('not a time')).toBe('not a time');
    expect(formatCount(1_234_567)).toBe('1,234,567');
    expect([0, 7, 999, 1000, 12_345.6, -1234, -0.2, 9_007_199_254_740_991].map(formatCount)).toEqual([
      '0', '7', '999', '1,000', '12,346', '-1,234', '0', '9,007,199,254,740,991',
    ]);
  });

  it('escapes control characters', () => {
    expect(sanitize('a\u001b[2Jb')).toBe('a\\x1b[2Jb');
    expect(sanitize('a\nb')).toBe('a\\nb');
    expect(sanitize('a\nb', { keepNewlines: true })).toBe('a\nb');
  });
});

describe('style', () => {
  it('colors only when asked, without touching the global chalk', () => {
    expect(plain.ok('x')).toBe('x');
    expect(colored.ok('x')).toMatch(ESC);
    expect(stripAnsi(colored.heading('Backup'))).toBe('Backup');
  });

  it('decides color from TTY, NO_COLOR, --no-color and FORCE_COLOR', () => {
    expect(wantsColor({ isTTY: true, env: {}, noColorFlag: false })).toBe(true);
    expect(wantsColor({ isTTY: false, env: {}, noColorFlag: false })).toBe(false);
    expect(wantsColor({ isTTY: undefined, env: {}, noColorFlag: false })).toBe(false);
    expect(wantsColor({ isTTY: true, env: { NO_COLOR: '1' }, noColorFlag: false })).toBe(false);
    expect(wantsColor({ isTTY: true, env: { NO_COLOR: '' }, noColorFlag: false })).toBe(true);
    expect(wantsColor({ isTTY: true, env: {}, noColorFlag: true })).toBe(false);
    expect(wantsColor({ isTTY: false, env: { FORCE_COLOR: '1' }, noColorFlag: false })).toBe(true);
    expect(wantsColor({ isTTY: false, env: { FORCE_COLOR: '0' }, noColorFlag: false })).toBe(false);
    expect(wantsColor({ isTTY: false, env: { FORCE_COLOR: '1' }, noColorFlag: true })).toBe(false);
  });
});

describe('table', () => {
  it('measures display width', () => {
    expect(displayWidth('abc')).toBe(3);
    expect(displayWidth('\u001b[31mabc\u001b[39m')).toBe(3);
    expect(displayWidth('日本語')).toBe(6);
    expect(displayWidth('한국')).toBe(4);
    expect(displayWidth('🚀x')).toBe(3);
    expect(displayWidth('👨‍👩‍👧')).toBe(2);
    expect(displayWidth('e\u0301')).toBe(1);
    expect(displayWidth('ｆｕｌｌ')).toBe(8);
  });

  it('aligns columns by display width, without trailing spaces', () => {
    const out = renderTable(
      [{ header: 'NAME' }, { header: 'ROWS', align: 'right' }, { header: 'NOTE' }],
      [
        ['日本', '5', ''],
        [colored.error('abc'), '1,000', '🚀 go'],
        ['x', '12', 'é'],
      ],
      colored,
    );
    expect(out.endsWith('\n')).toBe(true);
    const lines = out.trimEnd().split('\n').map(stripAnsi);
    expect(lines).toEqual(['NAME   ROWS  NOTE', '日本      5', 'abc   1,000  🚀 go', 'x        12  é']);
    for (const line of out.split('\n')) expect(line).not.toMatch(/ $/);
  });

  it('renders hostile lengths in linear time: 200,000 non-ASCII characters, 300,000 spaces then a letter', { timeout: 5_000 }, () => {
    const long = `${'ü '.repeat(100_000)}é`;
    expect(displayWidth(long)).toBe(200_001);
    const spaces = `${' '.repeat(300_000)}x`;
    const out = renderTable([{ header: 'NAME' }, { header: 'TAGS' }], [[long, spaces], ['x', 'y']], plain);
    expect(out.split('\n')[1]?.endsWith(' x')).toBe(true);
    expect(renderKeyValues([['tags', `${spaces}  `]], plain).endsWith('x\n')).toBe(true);
  });

  it('returns nothing for no rows, and aligns key/value blocks', () => {
    expect(renderTable([{ header: 'A' }], [], plain)).toBe('');
    expect(renderKeyValues([['a', '1'], ['long key', '2']], plain)).toBe('  a         1\n  long key  2\n');
  });
});

describe('render', () => {
  const sidecar = sampleSidecar(SHOWN);

  it('renders create', () => {
    const result: CreateResult = { sidecar, storage: '/var/backups/pg', warnings: ['globals without role passwords'] };
    const out = renderCreate(result, plain);
    expect(out).not.toMatch(ESC);
    expect(out).toContain(`Backup ${ID} completed`);
    expect(out).toContain(`${ID}.dump (1.2 GiB)`);
    expect(out).toContain(SHA_A);
    expect(out).toContain('12.3 s');
    expect(out).toContain('2 counted, 1,235,767 rows');
    expect(out).toContain('included (2 KiB, without role passwords)');
    expect(out).toContain('nightly, pre-migration');
    expect(out).toContain('warning: globals without role passwords');
    expect(renderCreate(result, colored)).toMatch(ESC);
  });

  it('renders list with verification summary and incomplete entries', () => {
    const untagged = sampleSidecar({ ...SHOWN, id: '20261122T140509Z-000000', startedAt: '2026-11-22T14:05:09Z', tags: [], verifications: [],
      artifact: { ...sidecar.artifact, file: '20261122T140509Z-000000.dump' }, globals: { status: 'skipped', reason: 'no access' } });
    const passed = sampleSidecar({ ...SHOWN, verifications: [sidecar.verifications[0]!] });
    const result: ListResult = {
      storage: '/var/backups/pg',
      backups: [sidecar, passed, untagged],
      incomplete: [{ profile: 'prod', id: '20261123T170000Z-ffffff', file: '20261123T170000Z-ffffff.dump', bytes: 4096, modifiedAt: '2026-11-23T17:00:00Z' }],
      warnings: [],
      refused: [],
      damage: new Map(),
    };
    const out = renderList(result, plain, NOW);
    expect(out).not.toMatch(ESC);
    const lines = out.split('\n');
    expect(lines[0]).toMatch(/^ID\s+PROFILE\s+DATABASE\s+CREATED\s+SIZE\s+DURATION\s+TAGS\s+VERIFIED$/);
    expect(lines[1]).toContain('2026-11-23 14:05Z (3 h ago)');
    expect(lines[1]).toContain('FAILED restore');
    expect(lines[2]).toContain('passed checksum 2 h ago');
    expect(lines[3]).toMatch(/ - +never$/);
    expect(out).toContain('Incomplete (no sidecar)');
    expect(out).toContain('20261123T170000Z-ffffff.dump');
    expect(out).toContain('4 KiB');
    expect(renderList({ ...result, backups: [], incomplete: [] }, plain, NOW)).toBe('No backups in /var/backups/pg.\n');
    // A filter that leaves nothing says so, not that the storage is empty.
    expect(renderList({ ...result, filter: 'tagged "scratch"', backups: [], incomplete: [] }, plain, NOW)).toBe('No backups tagged "scratch" in /var/backups/pg.\n');
    const green = renderList({ ...result, backups: [passed], incomplete: [] }, colored, NOW);
    expect(green).toContain(colored.ok('passed checksum 2 h ago'));
  });

  it('renders show with every group', () => {
    const out = renderShow({ storage: '/var/backups/pg', sidecar, problems: [] }, plain, NOW);
    expect(out).not.toMatch(ESC);
    for (const heading of ['Backup', 'Source', 'Engine', 'Dump', 'Artifact', 'Globals', 'Tables', 'Verifications', 'Tags and note']) {
      expect(out).toMatch(new RegExp(`^${heading}$`, 'm'));
    }
    expect(out).toContain('db.example.com');
    expect(out).toContain('16.4 (160004)');
    expect(out).toContain('00000003-00000002-1');
    expect(out).toContain('exclude schemas    audit');
    expect(out).toMatch(/public\.orders\s+1,234,567/);
    expect(out).toMatch(/total \(2 tables\)\s+1,235,767/);
    expect(out).toContain('FAILED');
    expect(out).toContain('row counts differ');
    expect(out).toContain('before the 3.0 migration');
    expect(out).not.toMatch(/password=/i);
    for (const line of out.split('\n')) expect(line).not.toMatch(/ $/);
  });

  it('shows the database locale when the sidecar records one (none in older sidecars)', () => {
    expect(renderShow({ storage: '/s', sidecar, problems: [] }, plain, NOW)).not.toMatch(/^ +locale /m);
    const icu = sampleSidecar({ ...SHOWN, database: { locale: { provider: 'icu', collate: 'C.UTF-8', ctype: 'C.UTF-8', locale: 'sv-SE', icuRules: null } } });
    expect(renderShow({ storage: '/s', sidecar: icu, problems: [] }, plain, NOW)).toMatch(/^ +locale +icu sv-SE \(libc C\.UTF-8\)$/m);
    const libc = sampleSidecar({ ...SHOWN, database: { locale: { provider: 'libc', collate: 'C', ctype: 'en_US.UTF-8', locale: null, icuRules: null } } });
    expect(renderShow({ storage: '/s', sidecar: libc, problems: [] }, plain, NOW)).toMatch(/^ +locale +collate C, ctype en_US\.UTF-8$/m);
  });

  it('escapes hostile text from a sidecar', () => {
    const hostile = sampleSidecar({ ...SHOWN, note: 'x\u001b]0;pwned\u0007', tags: ['\u001b[2J'] });
    const out = renderShow({ storage: '/s', sidecar: hostile, problems: [] }, plain, NOW);
    expect(out).not.toMatch(ESC);
    expect(out).toContain('\\x1b[2J');
  });

  it('builds the JSON shapes', () => {
    const result: CreateResult = { sidecar, storage: '/var/backups/pg', warnings: [] };
    expect(createJson(result)).toEqual({
      id: ID, profile: 'prod', database: 'app', artifact: `${ID}.dump`, bytes: 1_288_490_189, sha256: SHA_A,
      durationMs: 12_345, storage: '/var/backups/pg', tags: ['nightly', 'pre-migration'], warnings: [], copies: [],
    });
    const list = listJson({
      storage: '/s', backups: [sidecar], warnings: [], refused: [], damage: new Map(),
      incomplete: [{ profile: 'prod', id: 'x', file: 'x.dump', bytes: 1, modifiedAt: '2026-11-23T17:00:00Z' }],
    });
    expect(list).toHaveLength(2);
    const elements = [...list];
    expect(elements[0]).toMatchObject({ id: ID, verification: { level: 'restore', result: 'failed' } });
    expect(JSON.parse(renderJson(list))).toEqual(JSON.parse(JSON.stringify(elements)));
    expect(elements[1]).toEqual({ id: 'x', profile: 'prod', status: 'incomplete', file: 'x.dump', bytes: 1, modifiedAt: '2026-11-23T17:00:00Z' });
    const show: ShowResult = { storage: '/s', sidecar, problems: [] };
    expect(SidecarSchema.parse(JSON.parse(renderJson(showJson(show))))).toEqual(sidecar);
    expect(renderJson({ a: 1 })).toBe('{\n  "a": 1\n}\n');
  });
});

describe('renderError', () => {
  const inner = new Error('connect ECONNREFUSED 127.0.0.1:5432');
  const error = new BackupctlError('cannot connect to db.example.com:5432', {
    exitCode: ExitCode.FAILED,
    hint: 'is the server running?',
    cause: new BackupctlError('connection failed', { cause: inner }),
  });

  it('prints the message and the hint only, without verbose', () => {
    const out = renderError(error, plain, false);
    expect(out).toBe('error: cannot connect to db.example.com:5432\nhint: is the server running?\n');
    expect(renderError(new BackupctlError('a\nb'), plain, false)).toBe('error: a b\n');
    expect(renderError(new TypeError('boom'), plain, false)).toBe('error: boom\n');
    expect(renderError('thrown string', plain, false)).toBe('error: thrown string\n');
    expect(renderError(error, colored, false)).toContain(colored.error('error:'));
  });

  it('prints the cause chain and the innermost stack with verbose', () => {
    const out = renderError(error, plain, true);
    const lines = out.trimEnd().split('\n');
    expect(lines.slice(0, 4)).toEqual([
      'error: cannot connect to db.example.com:5432',
      'hint: is the server running?',
      'cause: connection failed',
      'cause: connect ECONNREFUSED 127.0.0.1:5432',
    ]);
    expect(lines.slice(4).length).toBeGreaterThan(0);
    expect(lines.slice(4).every((line) => line.startsWith('  at '))).toBe(true);
    const other = renderError(new Error('boom'), plain, true);
    expect(other.split('\n')[0]).toBe('error: boom');
    expect(other).toContain('  at ');
  });

  it('masks passwords in messages', () => {
    const out = renderError(new Error('bad url postgres://u:s3cret@h/db and password=hunter2'), plain, false);
    expect(out).not.toContain('s3cret');
    expect(out).not.toContain('hunter2');
  });
});

describe('reporter', () => {
  function fakeStream(): { stream: NodeJS.WritableStream & { isTTY?: boolean }; text: () => string } {
    const chunks: string[] = [];
    const stream = {
      isTTY: false,
      write(chunk: string | Uint8Array): boolean {
        chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
        return true;
      },
    } as unknown as NodeJS.WritableStream & { isTTY?: boolean };
    return { stream, text: () => chunks.join('') };
  }

  function clock(start = 0): { now: () => Date; advance: (ms: number) => void } {
    let t = Date.parse('2026-11-23T14:00:00Z') + start;
    return { now: () => new Date(t), advance: (ms) => (t += ms) };
  }

  it('writes info, warnings and debug as text; quiet suppresses info and progress', () => {
    const { stream, text } = fakeStream();
    const r = createReporter({ stream, style: plain, quiet: false, verbose: false, logFormat: 'text' });
    r.info('dumping app');
    r.warn('disk almost full');
    r.debug('hidden');
    expect(text()).toBe('dumping app\nwarning: disk almost full\n');

    const q = fakeStream();
    const quiet = createReporter({ stream: q.stream, style: plain, quiet: true, verbose: true, logFormat: 'text' });
    quiet.info('hidden');
    quiet.progress('dump', 10);
    quiet.progressDone('dump', 10);
    quiet.warn('shown');
    quiet.debug('detail');
    quiet.stop();
    expect(q.text()).toBe('warning: shown\ndebug: detail\n');
  });

  it('throttles plain progress lines to one per 10 seconds and reports the end', () => {
    const { stream, text } = fakeStream();
    const c = clock();
    const r = createReporter({ stream, style: plain, quiet: false, verbose: false, logFormat: 'text', now: c.now });
    r.progress('dump', 0);
    c.advance(5000);
    r.progress('dump', 50 * 1024 * 1024);
    c.advance(5000);
    r.progress('dump', 100 * 1024 * 1024);
    c.advance(1000);
    r.progress('dump', 110 * 1024 * 1024);
    c.advance(1000);
    r.progressDone('dump', 120 * 1024 * 1024);
    r.stop();
    expect(text()).toBe('dump: 100 MiB\ndump: done, 120 MiB in 12.0 s (10 MiB/s)\n');
  });

  it('falls back to plain lines on a terminal that reports no width', () => {
    const { stream, text } = fakeStream();
    Object.assign(stream, { isTTY: true, columns: 0, cursorTo: () => true, clearLine: () => true, moveCursor: () => true });
    const r = createReporter({ stream, style: plain, quiet: false, verbose: false, logFormat: 'text' });
    r.progress('dump', 10);
    r.progressDone('dump', 2048);
    r.stop();
    expect(text()).toMatch(/^dump: done, 2 KiB in \d+ ms/);
  });

  it('shows a spinner on a terminal and stops it', async () => {
    const { stream, text } = fakeStream();
    Object.assign(stream, { isTTY: true, columns: 80, cursorTo: () => true, clearLine: () => true, moveCursor: () => true });
    const c = clock();
    const r = createReporter({ stream, style: plain, quiet: false, verbose: false, logFormat: 'text', now: c.now });
    await r.ready(); // ora is loaded lazily, only where a spinner can show
    r.progress('dump', 0);
    c.advance(1000);
    r.progress('dump', 45 * 1024 * 1024);
    r.info('between');
    c.advance(1000);
    r.progressDone('dump', 90 * 1024 * 1024);
    r.stop();
    const out = text();
    expect(out).toContain('dump: 0 B');
    expect(out).toContain('between\n');
    expect(out).toContain('dump: done, 90 MiB in 2.0 s (45 MiB/s)\n');
  });

  it('emits one parseable JSON line per event', () => {
    const { stream, text } = fakeStream();
    const c = clock();
    const r = createReporter({ stream, style: colored, quiet: false, verbose: true, logFormat: 'json', now: c.now });
    r.info('starting');
    r.warn('careful');
    r.debug('detail');
    r.progress('dump', 0);
    c.advance(10_000);
    r.progress('dump', 2048);
    r.progressDone('dump', 4096);
    const events = text().trimEnd().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(events.map((e) => e.level)).toEqual(['info', 'warn', 'debug', 'progress', 'info']);
    expect(events[0]).toEqual({ time: '2026-11-23T14:00:00.000Z', level: 'info', message: 'starting' });
    expect(events[3]).toMatchObject({ phase: 'dump', bytes: 2048, message: 'dump: 2 KiB' });
    expect(events[4]).toMatchObject({ phase: 'dump', bytes: 4096 });
    expect(text()).not.toMatch(ESC);
  });
});

describe('writeJson', () => {
  const big = Array.from({ length: 3000 }, (_, i) => ({ id: `backup-${i}`, note: 'x'.repeat(300), nested: { list: [i, i + 1], text: 'line\nbreak' } }));

  it('writes a JsonArray as renderJson writes the array it stands for, making each element once', async () => {
    let made = 0;
    const lazy = new JsonArray(big.length, function* () {
      for (const element of big) {
        made += 1;
        yield element;
      }
    });
    let text = '';
    await writeJson({ write: (chunk: string) => (text += chunk) }, lazy);
    expect(text).toBe(renderJson(big));
    expect(made).toBe(big.length);
    text = '';
    await writeJson({ write: (chunk: string) => (text += chunk) }, new JsonArray(0, () => []));
    expect(text).toBe('[]\n');
  });

  it('writes exactly what renderJson gives, for arrays, empty arrays and objects', async () => {
    for (const value of [big, [], { a: 1 }, [null, 'x']]) {
      let text = '';
      await writeJson({ write: (chunk: string) => (text += chunk) }, value);
      expect(text).toBe(renderJson(value));
    }
  });

  it('waits for a full stream to drain instead of queueing the whole text in memory', async () => {
    let received = '';
    let maxQueued = 0;
    const sink = new Writable({
      highWaterMark: 64 * 1024,
      write(chunk: Buffer, _encoding, callback) {
        received += chunk.toString('utf8');
        setImmediate(callback); // a slow reader
      },
    });
    const write = sink.write.bind(sink);
    sink.write = ((chunk: string) => {
      const more = write(chunk);
      maxQueued = Math.max(maxQueued, sink.writableLength);
      return more;
    }) as typeof sink.write;
    await writeJson(sink, big);
    await new Promise<void>((resolve) => sink.end(resolve));
    expect(received).toBe(renderJson(big));
    expect(renderJson(big).length).toBeGreaterThan(1_000_000);
    expect(maxQueued).toBeLessThan(600 * 1024);
  });

  it('stops when the stream closes while it waits (a reader that went away)', async () => {
    const sink = new Writable({ highWaterMark: 1024, write: () => undefined }); // never drains
    const writing = writeJson(sink, big);
    setImmediate(() => sink.destroy());
    await expect(writing).resolves.toBeUndefined();
  });
});
