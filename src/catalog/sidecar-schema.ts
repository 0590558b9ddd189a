import * as z from 'zod';
import { ID_PATTERN, PROFILE_PATTERN } from './id.js';
import { fastPath } from './schema-fast-path.js';
import { MAX_SIDECAR_BYTES, SIDECAR_SCHEMA_VERSION, SidecarError, stageSummary } from './sidecar.js';

/**
 * The sidecar's schema (contract: sidecar.ts), checked on every read. Every string and list
 * is bounded: a sidecar comes from storage, and a hostile one must not make rendering or
 * comparing it slow (a 200,000-character table name used to stall `show`). The bounds are
 * far above anything PostgreSQL or backupctl writes (identifiers are at most 63 bytes).
 */
const identifier = z.string().max(255);
const shortText = z.string().max(1000);
const longText = z.string().max(20_000);
const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'expected a sha256 hex digest');
const isoTime = z.iso.datetime({ offset: true });
const nonNegativeInt = z.number().int().nonnegative();
/** A plain file name in the profile directory, derived from the id: never a path. */
const artifactFileName = z
  .string()
  .regex(/^\d{8}T\d{6}Z-[0-9a-f]{6}(\.[a-z0-9]+)+$/, 'expected a file name derived from the backup id');

export const TableCountSchema = z.object({
  schema: identifier,
  name: identifier,
  /** Exact row count, taken inside the snapshot pg_dump used. */
  rows: nonNegativeInt,
});

/** A database's locale: libc's LC_COLLATE/LC_CTYPE, and the ICU or builtin locale where that is the provider. */
export const DatabaseLocaleSchema = z.object({
  provider: z.enum(['libc', 'icu', 'builtin']),
  collate: identifier,
  ctype: identifier,
  /** The ICU locale (provider icu) or the builtin one (provider builtin). */
  locale: identifier.nullable(),
  /** ICU tailoring rules (PostgreSQL 16+). */
  icuRules: shortText.nullable(),
});

export const VerificationSchema = z.object({
  at: isoTime,
  level: z.enum(['checksum', 'archive', 'restore']),
  result: z.enum(['passed', 'failed']),
  durationMs: nonNegativeInt,
  serverVersion: shortText.optional(),
  mismatches: z.array(longText).max(1000).default([]),
  error: longText.optional(),
});

/** How a recipient of an encrypted artifact is recorded: a fingerprint, never a key. */
export const RecipientRecordSchema = z.discriminatedUnion('scheme', [
  z.object({ scheme: z.literal('x25519'), fingerprint: z.string().regex(/^x25519:sha256:[0-9a-f]{16}$/, 'expected an x25519 fingerprint') }),
  z.object({ scheme: z.literal('scrypt'), workFactor: z.number().int().min(1).max(64) }),
]);

/**
 * One stage of the pipeline that wrote a stored file, in write order (src/pipeline/stage.ts):
 * readers undo them in reverse. An empty list (every version 1 sidecar) is the identity.
 */
export const StageRecordSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('compression'),
    codec: z.enum(['none', 'gzip', 'zstd']),
    level: z.number().int().min(-131072).max(22).nullable(),
    threads: z.number().int().min(0).max(256).optional(),
  }),
  z.object({ type: z.literal('encryption'), scheme: z.literal('age'), recipients: z.array(RecipientRecordSchema).min(1).max(1000) }),
]);

const stageList = z
  .array(StageRecordSchema)
  .max(2)
  .default([])
  .refine((stages) => {
    const types = stages.map((stage) => stage.type);
    return new Set(types).size === types.length && (types.length < 2 || types[0] === 'compression');
  }, 'expected at most one compression stage, then at most one encryption stage');

/** Size and sha256 of the bytes before any stage (what pg_dump or pg_dumpall wrote). */
const plaintextDigest = z.object({ bytes: nonNegativeInt, sha256: sha256Hex });

export const GlobalsSchema = z.discriminatedUnion('status', [
  z.object({
    status: z.literal('included'),
    file: artifactFileName,
    bytes: nonNegativeInt,
    sha256: sha256Hex,
    /** false when dumped with --no-role-passwords (the role could not read pg_authid). */
    rolePasswords: z.boolean(),
    /** The stages the file went through (the artifact's): role password hashes are encrypted with the dump. */
    stages: stageList,
    plaintext: plaintextDigest.optional(),
  }),
  z.object({ status: z.literal('skipped'), reason: longText }),
]);

export const SidecarSchema = z.object({
  /** 1: before stages (stored bytes = the archive); 2: `artifact.stages`. Both are read. */
  schemaVersion: z.union([z.literal(1), z.literal(SIDECAR_SCHEMA_VERSION)]),
  id: z.string().regex(ID_PATTERN, 'expected a backup id'),
  profile: z.string().regex(PROFILE_PATTERN, 'expected a profile name'),
  /** Only completed backups get a sidecar today; the field leaves room for more states. */
  status: z.literal('completed'),
  startedAt: isoTime,
  finishedAt: isoTime,
  durationMs: nonNegativeInt,
  tool: z.object({ name: z.literal('backupctl'), version: shortText }),
  engine: z.object({
    serverVersion: shortText,
    serverVersionNum: z.number().int().positive(),
    pgDumpVersion: shortText,
  }),
  source: z.object({
    host: shortText,
    port: z.number().int().positive(),
    user: identifier,
    database: identifier,
  }),
  database: z.object({
    name: identifier,
    sizeBytes: nonNegativeInt,
    encoding: identifier,
    /** Large objects in the database at backup time, in the archive or not (see dump.largeObjects). */
    largeObjects: nonNegativeInt,
    /**
     * The database has a schema named `public` (absent in sidecars written before it was
     * recorded). pg_dump records no trace of a dropped one, and a new database has one.
     */
    publicSchema: z.boolean().optional(),
    /**
     * The database's locale as pg_database has it (absent in sidecars written before it was
     * recorded): verify's throwaway and restore's staging database are created with it.
     */
    locale: DatabaseLocaleSchema.optional(),
    /**
     * The database's owner (absent in sidecars written before it was recorded): restore
     * --create gives it the new database when that role exists there (pg_dump records no
     * owner of the database itself, and since PostgreSQL 15 the owner owns `public`).
     */
    owner: identifier.optional(),
  }),
  dump: z.object({
    format: z.enum(['custom', 'directory']),
    /** pg_dump's own --compress value, as given (null: pg_dump's default). */
    compress: z.union([z.number().int(), shortText]).nullable(),
    jobs: z.number().int().positive(),
    schemaOnly: z.boolean(),
    dataOnly: z.boolean(),
    schemas: z.array(shortText).max(10_000),
    excludeSchemas: z.array(shortText).max(10_000),
    tables: z.array(shortText).max(10_000),
    excludeTables: z.array(shortText).max(10_000),
    lockWaitTimeout: shortText.nullable(),
    /** The exported snapshot both pg_dump and the row counts used. */
    snapshot: shortText,
    /** Number of entries in the archive's table of contents (pg_restore --list). */
    tocEntries: nonNegativeInt,
    /**
     * Number of large objects in the archive (0 when pg_dump left them out: --schema,
     * --table, --schema-only); verify and restore compare it. Absent in sidecars written
     * before it was recorded: `database.largeObjects` is then compared when the archive
     * holds large objects.
     */
    largeObjects: nonNegativeInt.optional(),
  }),
  artifact: z.object({
    file: artifactFileName,
    /** How the stored bytes are laid out: pg_dump's custom archive, or a tar of a directory-format dump. */
    container: z.enum(['pg-custom', 'tar']),
    bytes: nonNegativeInt,
    /** sha256 of the bytes as stored. */
    sha256: sha256Hex,
    /** The stages between pg_dump's bytes and the stored ones, in write order; the truth for every reader. */
    stages: stageList,
    /** pg_dump's bytes (the archive itself); absent in version 1 sidecars, whose stored bytes are the archive. */
    plaintext: plaintextDigest.optional(),
    /** A summary of `stages` for people and scripts: the compression stage (pg_dump's own is in `dump.compress`). */
    compression: z.object({ codec: z.enum(['none', 'gzip', 'zstd']), level: z.number().int().nullable() }),
    /** A summary of `stages`: null when not encrypted; otherwise the scheme and recipient fingerprints, never keys. */
    encryption: z
      .object({ scheme: z.literal('age'), recipients: z.array(shortText).max(1000), plaintextSha256: sha256Hex.optional() })
      .nullable(),
  }),
  globals: GlobalsSchema,
  tables: z.array(TableCountSchema),
  tags: z.array(z.string().max(64)).max(1000),
  note: longText.nullable(),
  verifications: z.array(VerificationSchema).max(1000),
});

export type Sidecar = z.infer<typeof SidecarSchema>;
export type Verification = z.infer<typeof VerificationSchema>;
export type TableCount = z.infer<typeof TableCountSchema>;

/**
 * A sidecar without `tables`: what the catalog index keeps of each backup (catalog-index.ts),
 * and what list, status and prune work from. Validated like a sidecar.
 */
export const SidecarSummarySchema = SidecarSchema.omit({ tables: true });

/**
 * Parses and validates sidecar bytes. `expected` ties the content to where it was
 * found: a sidecar whose id or profile does not match its own file name is refused
 * (a copied or renamed sidecar would otherwise describe someone else's artifact).
 */
export function parseSidecar(
  key: string,
  bytes: Buffer,
  expected: { id: string; profile: string },
): Sidecar {
  if (bytes.length > MAX_SIDECAR_BYTES) throw new SidecarError(key, `larger than ${MAX_SIDECAR_BYTES} bytes`);
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new SidecarError(key, `not valid JSON (${(error as Error).message})`);
  }
  return checked(key, SidecarSchema, raw, expected);
}

/**
 * Validates a parsed summary (an entry of the catalog index) as parseSidecar validates a
 * sidecar: the schema without `tables`, and the same ties to its key.
 */
export function parseSidecarSummary(key: string, raw: unknown, expected: { id: string; profile: string }): Omit<Sidecar, 'tables'> {
  return checked(key, SidecarSummarySchema, raw, expected);
}

function checked<S extends typeof SidecarSchema | typeof SidecarSummarySchema>(key: string, schema: S, raw: unknown, expected: { id: string; profile: string }): z.infer<S> {
  if (typeof raw === 'object' && raw !== null && 'schemaVersion' in raw) {
    const version = (raw as { schemaVersion: unknown }).schemaVersion;
    if (typeof version === 'number' && version > SIDECAR_SCHEMA_VERSION) {
      throw new SidecarError(key, `written by a newer backupctl (sidecar version ${version}); upgrade backupctl`, { newerVersion: true });
    }
  }
  const sidecar = valid(key, schema, raw);
  const summary = stageSummary(sidecar.artifact.stages);
  if (summary.compression.codec !== sidecar.artifact.compression.codec || (summary.encryption === null) !== (sidecar.artifact.encryption === null)) {
    throw new SidecarError(key, 'invalid sidecar: artifact.compression or artifact.encryption does not match artifact.stages');
  }
  if (sidecar.id !== expected.id || sidecar.profile !== expected.profile) {
    throw new SidecarError(key, `describes ${sidecar.profile}/${sidecar.id}, not the file it is stored in`);
  }
  for (const file of [sidecar.artifact.file, sidecar.globals.status === 'included' ? sidecar.globals.file : null]) {
    if (file !== null && !file.startsWith(`${sidecar.id}.`)) {
      throw new SidecarError(key, `names a file (${file}) that does not belong to backup ${sidecar.id}`);
    }
  }
  return sidecar;
}

/**
 * `raw` as the schema's output: `raw` itself when the fast path finds zod would return it
 * unchanged (schema-fast-path.ts: no copy, no allocation per check), else what zod makes of
 * it; zod's first issue is the error.
 */
function valid<S extends typeof SidecarSchema | typeof SidecarSummarySchema>(key: string, schema: S, raw: unknown): z.infer<S> {
  if (fastPath(schema)?.(raw)) return raw as z.infer<S>;
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    const where = first ? first.path.join('.') || '(root)' : '(root)';
    const more = parsed.error.issues.length > 1 ? ` (+${parsed.error.issues.length - 1} more)` : '';
    throw new SidecarError(key, `invalid sidecar: ${where}: ${first?.message ?? 'invalid'}${more}`);
  }
  return parsed.data as z.infer<S>;
}

export type StageRecordJson = z.infer<typeof StageRecordSchema>;

