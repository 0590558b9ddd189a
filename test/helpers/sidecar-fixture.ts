/**
 * One schema-valid sidecar for unit tests. Tests pass, as overrides, every value their
 * assertions depend on; the defaults are plain (no tables, tags, note or verifications;
 * globals included) and the artifact and globals file names follow the id.
 */
import { SIDECAR_SCHEMA_VERSION, type Sidecar } from '../../src/catalog/sidecar.js';
import { SidecarSchema } from '../../src/catalog/sidecar-schema.js';

/** The default id of `sampleSidecar()`. */
export const SAMPLE_ID = '20261123T140509Z-1a2b3c';

type Nested = 'engine' | 'source' | 'database' | 'dump' | 'artifact';

/** Top-level fields replace the default; the nested groups are merged key by key. */
export type SidecarOverrides = Partial<Omit<Sidecar, Nested>> & { [K in Nested]?: Partial<Sidecar[K]> };

/** A fresh, validated sidecar (callers may mutate it). */
export function sampleSidecar(overrides: SidecarOverrides = {}): Sidecar {
  const { engine, source, database, dump, artifact, ...top } = overrides;
  const id = top.id ?? SAMPLE_ID;
  return SidecarSchema.parse({
    schemaVersion: SIDECAR_SCHEMA_VERSION,
    id,
    profile: 'app',
    status: 'completed',
    startedAt: '2026-11-23T14:05:09Z',
    finishedAt: '2026-11-23T14:05:21Z',
    durationMs: 12_000,
    tool: { name: 'backupctl', version: '0.1.0' },
    globals: { status: 'included', file: `${id}.globals.sql`, bytes: 1024, sha256: 'b'.repeat(64), rolePasswords: false },
    tables: [],
    tags: [],
    note: null,
    verifications: [],
    ...top,
    engine: { serverVersion: '17.2', serverVersionNum: 170002, pgDumpVersion: '17.2', ...engine },
    source: { host: 'db.example.com', port: 5432, user: 'backup', database: 'app', ...source },
    database: { name: 'app', sizeBytes: 1_000_000, encoding: 'UTF8', largeObjects: 0, ...database },
    dump: {
      format: 'custom',
      compress: null,
      jobs: 1,
      schemaOnly: false,
      dataOnly: false,
      schemas: [],
      excludeSchemas: [],
      tables: [],
      excludeTables: [],
      lockWaitTimeout: null,
      snapshot: '00000003-00000002-1',
      tocEntries: 10,
      ...dump,
    },
    artifact: {
      file: `${id}.dump`,
      container: 'pg-custom',
      bytes: 1_000_000,
      sha256: 'a'.repeat(64),
      compression: { codec: 'none', level: null },
      encryption: null,
      ...artifact,
    },
  });
}
