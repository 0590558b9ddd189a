import { describe, expect, it } from 'vitest';
import { MAX_SIDECAR_BYTES, qualifiedName, serializeSidecar, SidecarError, standingVerification, type Sidecar, type Verification } from '../../src/catalog/sidecar.js';
import { parseSidecar, SidecarSchema } from '../../src/catalog/sidecar-schema.js';
import { sampleSidecar, type SidecarOverrides } from '../helpers/sidecar-fixture.js';

const ID = '20261123T140509Z-1a2b3c';
const PROFILE = 'app';
const KEY = `${PROFILE}/${ID}.json`;

/** Globals included, tables (one with a non-ASCII schema) and a verification: every field the edits below reach exists. */
const VALID: SidecarOverrides = {
  id: ID,
  profile: PROFILE,
  globals: { status: 'included', file: `${ID}.globals.sql`, bytes: 671, sha256: 'b'.repeat(64), rolePasswords: false, stages: [] },
  tables: [
    { schema: 'app', name: 'events', rows: 10_000 },
    { schema: 'Ünïcødé Schema', name: 'Table With Spaces', rows: 3 },
  ],
  tags: ['nightly'],
  note: 'a note',
  verifications: [
    { at: '2026-11-23T15:00:00Z', level: 'restore', result: 'passed', durationMs: 5000, serverVersion: '15.18', mismatches: [] },
  ],
};

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- hostile edits reach into any field, with any type
type Mutable = Record<string, any>;

/** parseSidecar on the JSON of `valid` after `edit`. */
function parseEdited(edit: (s: Mutable) => void, expected = { id: ID, profile: PROFILE }): Sidecar {
  const sidecar = sampleSidecar(VALID) as unknown as Mutable;
  edit(sidecar);
  return parseSidecar(KEY, Buffer.from(JSON.stringify(sidecar)), expected);
}

function rejection(fn: () => unknown): SidecarError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(SidecarError);
    expect((error as Error).message.startsWith(`${KEY}: `)).toBe(true);
    return error as SidecarError;
  }
  throw new Error('expected a SidecarError, got none');
}

describe('parseSidecar', () => {
  it('accepts a valid sidecar and returns it unchanged', () => {
    const sidecar = sampleSidecar(VALID);
    expect(parseSidecar(KEY, Buffer.from(JSON.stringify(sidecar)), { id: ID, profile: PROFILE })).toEqual(sidecar);
  });

  it('accepts what serializeSidecar writes (round trip), skipped globals and a tar container', () => {
    const sidecar = sampleSidecar(VALID);
    sidecar.globals = { status: 'skipped', reason: 'disabled (--no-globals)' };
    sidecar.artifact.file = `${ID}.dump.tar`;
    sidecar.artifact.container = 'tar';
    sidecar.dump.format = 'directory';
    sidecar.dump.jobs = 4;
    const bytes = serializeSidecar(sidecar);
    expect(bytes.toString('utf8').endsWith('}\n')).toBe(true);
    expect(parseSidecar(KEY, bytes, { id: ID, profile: PROFILE })).toEqual(sidecar);
  });

  it('fills the optional defaults of older writers (verification mismatches)', () => {
    const parsed = parseEdited((s) => {
      delete s.verifications[0].mismatches;
    });
    expect(parsed.verifications[0]?.mismatches).toEqual([]);
  });

  it('bounds hostile lengths: a 300-character table name, a 30,000-character tag, a 100,000-character note', () => {
    expect(rejection(() => parseEdited((s) => (s.tables[0].name = 'n'.repeat(300)))).message).toMatch(/tables\.0\.name: Too big/);
    expect(rejection(() => parseEdited((s) => (s.tags = ['t'.repeat(30_000)]))).message).toMatch(/tags\.0: Too big/);
    expect(rejection(() => parseEdited((s) => (s.note = 'x'.repeat(100_000)))).message).toMatch(/note: Too big/);
  });

  it('rejects bad JSON with the key and "not valid JSON"', () => {
    const json = JSON.stringify(sampleSidecar(VALID));
    for (const text of [json.slice(0, json.length / 2), '', 'not json', '{"schemaVersion": 1,}']) {
      expect(rejection(() => parseSidecar(KEY, Buffer.from(text), { id: ID, profile: PROFILE })).message).toMatch(/not valid JSON/);
    }
  });

  it('rejects JSON that is not an object', () => {
    for (const text of ['null', '[]', '42', '"x"', '{}']) {
      expect(rejection(() => parseSidecar(KEY, Buffer.from(text), { id: ID, profile: PROFILE })).message).toMatch(/invalid sidecar/);
    }
  });

  it('reads version 1 sidecars (no stages: the stored bytes are the archive) as the identity pipeline', () => {
    const parsed = parseEdited((s) => {
      s.schemaVersion = 1;
      delete s.artifact.stages;
      delete s.artifact.plaintext;
      delete s.globals.stages;
    });
    expect(parsed.artifact.stages).toEqual([]);
    expect(parsed.globals.status === 'included' && parsed.globals.stages).toEqual([]);
  });

  it('reads stages, and refuses stages out of order or summaries that contradict them', () => {
    const zstd = { type: 'compression', codec: 'zstd', level: 3, threads: 2 };
    const age = { type: 'encryption', scheme: 'age', recipients: [{ scheme: 'x25519', fingerprint: 'x25519:sha256:0123456789abcdef' }] };
    const staged = (stages: unknown[], compression: unknown, encryption: unknown) => (s: Mutable) => {
      s.artifact.stages = stages;
      s.artifact.compression = compression;
      s.artifact.encryption = encryption;
      s.artifact.file = `${ID}.dump.zst.age`;
    };
    const parsed = parseEdited(staged([zstd, age], { codec: 'zstd', level: 3 }, { scheme: 'age', recipients: ['x25519:sha256:0123456789abcdef'] }));
    expect(parsed.artifact.stages).toEqual([zstd, age]);
    expect(rejection(() => parseEdited(staged([age, zstd], { codec: 'zstd', level: 3 }, { scheme: 'age', recipients: [] }))).message).toMatch(/artifact\.stages/);
    expect(rejection(() => parseEdited(staged([zstd, zstd], { codec: 'zstd', level: 3 }, null))).message).toMatch(/artifact\.stages/);
    expect(rejection(() => parseEdited(staged([zstd], { codec: 'none', level: null }, null))).message).toMatch(/does not match artifact\.stages/);
    expect(rejection(() => parseEdited(staged([zstd], { codec: 'zstd', level: 3 }, { scheme: 'age', recipients: [] }))).message).toMatch(/does not match artifact\.stages/);
    expect(rejection(() => parseEdited(staged([{ ...age, recipients: [{ scheme: 'x25519', fingerprint: 'AGE-SECRET-KEY-1' }] }], { codec: 'none', level: null }, { scheme: 'age', recipients: [] }))).message).toMatch(/artifact\.stages/);
    expect(rejection(() => parseEdited(staged([{ type: 'compression', codec: 'brotli', level: 1 }], { codec: 'none', level: null }, null))).message).toMatch(/artifact\.stages/);
  });

  it('rejects a newer schemaVersion, saying to upgrade', () => {
    const error = rejection(() => parseEdited((s) => (s.schemaVersion = 3)));
    expect(error.message).toMatch(/newer backupctl/);
    expect(error.message).toMatch(/upgrade/);
    expect(rejection(() => parseEdited((s) => (s.schemaVersion = 0))).message).toMatch(/invalid sidecar: schemaVersion/);
    expect(rejection(() => parseEdited((s) => (s.schemaVersion = '1'))).message).toMatch(/invalid sidecar: schemaVersion/);
    expect(rejection(() => parseEdited((s) => delete s.schemaVersion)).message).toMatch(/invalid sidecar: schemaVersion/);
  });

  it.each([
    '../../etc/passwd',
    '/etc/passwd',
    `${ID}.dump/../../../etc/passwd`,
    `../${ID}.dump`,
    `${ID}.dump\u0000`,
    `${ID}.DUMP`,
    `${ID}.dump `,
    'C:\\Windows\\x',
    `${ID}`,
  ])('rejects artifact.file %j (never a path)', (file) => {
    expect(rejection(() => parseEdited((s) => (s.artifact.file = file))).message).toMatch(/artifact\.file/);
  });

  it('rejects a globals file that is a path or belongs to another backup', () => {
    expect(rejection(() => parseEdited((s) => (s.globals.file = '../../etc/shadow'))).message).toMatch(/globals\.file/);
    expect(rejection(() => parseEdited((s) => (s.globals.file = '20200101T000000Z-000000.globals.sql'))).message).toMatch(
      /does not belong to backup/,
    );
  });

  it('rejects an artifact file of another backup', () => {
    expect(rejection(() => parseEdited((s) => (s.artifact.file = '20200101T000000Z-000000.dump'))).message).toMatch(
      /20200101T000000Z-000000\.dump.*does not belong to backup/,
    );
  });

  it('rejects an id or profile that does not match where the file is', () => {
    expect(rejection(() => parseSidecar(KEY, serializeSidecar(sampleSidecar(VALID)), { id: '20200101T000000Z-000000', profile: PROFILE })).message).toMatch(
      /describes app\/20261123T140509Z-1a2b3c, not the file it is stored in/,
    );
    expect(rejection(() => parseSidecar(KEY, serializeSidecar(sampleSidecar(VALID)), { id: ID, profile: 'billing' })).message).toMatch(
      /not the file it is stored in/,
    );
  });

  it('rejects ids and profiles that are not safe names', () => {
    for (const id of ['../x', '20261123T140509Z-1A2B3C', '20261123T140509Z-1a2b3', `${ID}/..`, '']) {
      expect(rejection(() => parseEdited((s) => (s.id = id), { id, profile: PROFILE })).message).toMatch(/invalid sidecar: id/);
    }
    for (const profile of ['..', '../x', 'a/b', '', '.hidden', 'x'.repeat(64)]) {
      expect(rejection(() => parseEdited((s) => (s.profile = profile), { id: ID, profile })).message).toMatch(/invalid sidecar: profile/);
    }
  });

  it('rejects a sidecar larger than the limit unread', () => {
    const big = Buffer.alloc(MAX_SIDECAR_BYTES + 1, 0x20);
    expect(rejection(() => parseSidecar(KEY, big, { id: ID, profile: PROFILE })).message).toMatch(/larger than/);
  });

  it.each<[string, (s: Mutable) => void, RegExp]>([
    ['a huge byte count', (s) => (s.artifact.bytes = 1e300), /artifact\.bytes/],
    ['an unsafe integer', (s) => (s.database.sizeBytes = 2 ** 60), /database\.sizeBytes/],
    ['a negative row count', (s) => (s.tables[0].rows = -1), /tables\.0\.rows/],
    ['a fractional row count', (s) => (s.tables[0].rows = 1.5), /tables\.0\.rows/],
    ['a row count as a string', (s) => (s.tables[0].rows = '10000'), /tables\.0\.rows/],
    ['bytes as a string', (s) => (s.artifact.bytes = '1489131'), /artifact\.bytes/],
    ['tables not an array', (s) => (s.tables = { length: 1 }), /tables/],
    ['tags with a number', (s) => (s.tags = ['ok', 7]), /tags\.1/],
    ['a port out of range type', (s) => (s.source.port = 'x'), /source\.port/],
    ['a sha256 that is not hex', (s) => (s.artifact.sha256 = 'Z'.repeat(64)), /artifact\.sha256/],
    ['a short sha256', (s) => (s.artifact.sha256 = 'ab'), /artifact\.sha256/],
    ['an unknown status', (s) => (s.status = 'running'), /status/],
    ['a bad timestamp', (s) => (s.startedAt = 'yesterday'), /startedAt/],
    ['an unknown container', (s) => (s.artifact.container = 'zip'), /artifact\.container/],
    ['an unknown verification level', (s) => (s.verifications[0].level = 'vibes'), /verifications\.0\.level/],
    ['a missing source', (s) => delete s.source, /source/],
  ])('rejects %s', (_label, edit, where) => {
    expect(rejection(() => parseEdited(edit)).message).toMatch(where);
  });

  it('the schema itself accepts what create writes and nothing looser', () => {
    expect(SidecarSchema.safeParse(sampleSidecar(VALID)).success).toBe(true);
    expect(SidecarSchema.safeParse({ ...sampleSidecar(VALID), status: 'failed' }).success).toBe(false);
  });
});

describe('standingVerification', () => {
  const v = (minute: number, level: Verification['level'], result: Verification['result']): Verification => ({
    at: new Date(Date.UTC(2026, 0, 1, 0, minute)).toISOString(),
    level,
    result,
    durationMs: 1,
    mismatches: [],
  });

  it('is null for a backup never verified, else the latest by time (not by array position)', () => {
    expect(standingVerification([])).toBeNull();
    expect(standingVerification([v(2, 'restore', 'passed'), v(1, 'checksum', 'passed')])).toEqual(v(2, 'restore', 'passed'));
  });

  it('a failure stands until a later pass at the same or a deeper level answers it', () => {
    expect(standingVerification([v(1, 'restore', 'failed'), v(2, 'checksum', 'passed')])).toEqual(v(1, 'restore', 'failed'));
    expect(standingVerification([v(1, 'restore', 'failed'), v(2, 'archive', 'passed')])).toEqual(v(1, 'restore', 'failed'));
    expect(standingVerification([v(1, 'restore', 'failed'), v(2, 'restore', 'passed')])).toEqual(v(2, 'restore', 'passed'));
    expect(standingVerification([v(1, 'checksum', 'failed'), v(2, 'restore', 'passed')])).toEqual(v(2, 'restore', 'passed'));
    // Two failures: a checksum pass answers the checksum one only.
    expect(standingVerification([v(1, 'restore', 'failed'), v(2, 'checksum', 'failed'), v(3, 'checksum', 'passed')])).toEqual(v(1, 'restore', 'failed'));
    // The latest failure is the one reported.
    expect(standingVerification([v(3, 'checksum', 'failed'), v(1, 'restore', 'failed')])).toEqual(v(3, 'checksum', 'failed'));
  });

  it('a data-only backup is verified at level archive at most: an archive pass answers its old restore-level failure', () => {
    const history = [v(1, 'restore', 'failed'), v(2, 'archive', 'passed')];
    expect(standingVerification(history, { dataOnly: true })).toEqual(v(2, 'archive', 'passed'));
    expect(standingVerification(history, { dataOnly: false })).toEqual(v(1, 'restore', 'failed'));
  });
});

describe('qualifiedName', () => {
  it('quotes a part only when SQL needs it, so that names with dots, spaces or capitals read apart', () => {
    expect(qualifiedName({ schema: 'public', name: 'orders' })).toBe('public.orders');
    expect(qualifiedName({ schema: 'a.b', name: 'c' })).toBe('"a.b".c');
    expect(qualifiedName({ schema: 'a', name: 'b.c' })).toBe('a."b.c"');
    expect(qualifiedName({ schema: 'a b', name: 'MixedCase' })).toBe('"a b"."MixedCase"');
    expect(qualifiedName({ schema: 'sch"q', name: 'tab"q' })).toBe('"sch""q"."tab""q"');
  });
});
