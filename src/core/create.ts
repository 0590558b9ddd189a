import { pgCompressIsOff } from '../config/schema.js';
import { readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { artifactKey, Catalog } from '../catalog/catalog.js';
import { newBackupId } from '../catalog/id.js';
import { SIDECAR_SCHEMA_VERSION, stageSummary, type Sidecar } from '../catalog/sidecar.js';
import { BackupctlError, ExitCode, InterruptedError, throwIfAborted, usageError } from '../errors.js';
import { chooseClient, discoverClients, serverMajor, type ClientBinary } from '../pg/binaries.js';
import { childEnv } from '../pg/child-env.js';
import { describeConnection } from '../pg/connection.js';
import { minimumDumpMajorFor, pgDumpArgs, runDirectoryDump, selectionArgs, startCustomDump, startGlobalsDump, type ChildRun, type DumpOptions } from '../pg/dump.js';
import { reorderedWarning } from '../pg/column-order.js';
import { SnapshotSession, type CountedTable } from '../pg/snapshot.js';
import { describeLockWait, watchLockWaits } from '../pg/lock-waits.js';
import { holdsLargeObjects, readToc, tablesSelectedBy, tablesWithData, type TocEntry } from '../pg/toc.js';
import { buildWriteChain, pipeThrough } from '../pipeline/artifact.js';
import type { Digest } from '../pipeline/digest.js';
import { PipelineError } from '../pipeline/errors.js';
import { gateOnExit } from '../pipeline/gate.js';
import { artifactSuffix, type Stage, type StageRecord } from '../pipeline/stage.js';
import { teeToSide } from '../pipeline/tee.js';
import { scratchDir } from '../platform/run-dir.js';
import type { Storage } from '../storage/storage.js';
import { VERSION } from '../version.js';
import { acquireDatabaseLock, acquireProfileLock, type DatabaseLock } from './lock.js';
import type { KeyFlags } from './keys.js';
import type { ResolvedProfile } from './profile.js';
import { writeStages } from './stages.js';
import type { CreateResult } from './results.js';
import type { Runtime } from './runtime.js';
import { storageError } from './storage-errors.js';
import { storageAt } from './storages.js';
import { workDirFailure } from './work-dir.js';
import { unmatchedIncludes } from '../pg/patterns.js';

/** The archive entries that create a relation (pg_restore --list types). */
const DUMPED_RELATIONS = new Set(['TABLE', 'VIEW', 'MATERIALIZED VIEW', 'FOREIGN TABLE']);

interface StoredArtifact extends StoredFile {
  container: 'pg-custom' | 'tar';
  toc: TocEntry[];
  /** What pg_dump warned of (dumpWarnings): the backup's warnings. */
  warnings: string[];
}

/** A file written through the stages: its stored digest, its plaintext digest and the stage records. */
interface StoredFile {
  file: string;
  key: string;
  bytes: number;
  sha256: string;
  plaintext: Digest;
  stages: StageRecord[];
}

/**
 * Takes one backup. The order is the contract:
 * 1. check the storage is writable and the server reachable, before any dump starts;
 *    take the profile's lock and the database's advisory lock (busy: exit 4, or --wait);
 * 2. open a REPEATABLE READ transaction and export its snapshot;
 * 3. run pg_dump on that snapshot, streaming into storage under a temporary name,
 *    while counting every table's rows in the same snapshot;
 * 4. read the stored archive's table of contents; dump globals beside it;
 * 5. write the sidecar, last and atomically. Until then the backup does not exist:
 *    on any failure or interrupt, everything written for it is removed.
 */
export async function createBackup(profile: ResolvedProfile, runtime: Runtime, options: CreateOptions = {}): Promise<CreateResult> {
  // Finding the client programs needs neither storage nor server: it runs while the
  // storage is checked, the locks are taken and the snapshot session opens.
  const clientOptions = { pgBinDir: profile.pgBinDir, path: runtime.env.PATH };
  const discovered: Discovered = Promise.all([
    discoverClients('pg_dump', clientOptions),
    discoverClients('pg_restore', clientOptions),
    discoverClients('pg_dumpall', clientOptions),
  ]);
  discovered.catch(() => undefined);
  // Compression and encryption are settled first: a missing zstd or a bad key file is exit 2 before anything starts.
  const stages = writeStages(profile.compression, profile.encryption, options.keyFlags ?? {}, runtime.env);
  const storage = storageAt(runtime, profile.storage, profile.settings.storageSettings);
  try {
    await storage.checkWritable(profile.name);
  } catch (error) {
    throw storageError(error, storage.location, 'checking the backup directory');
  }
  throwIfAborted(runtime.signal);

  // Both locks are taken before the dump starts and released whatever happens (also on SIGINT).
  const waitFrom = performance.now();
  const lock = await acquireProfileLock({ storage, profile: profile.name, command: 'create', waitMs: options.waitMs, runtime });
  let databaseLock: DatabaseLock | null = null;
  try {
    const waitLeft = Math.max(0, (options.waitMs ?? 0) - (performance.now() - waitFrom));
    databaseLock = await acquireDatabaseLock({ connection: profile.connection, command: 'create', waitMs: waitLeft, runtime });
    options.onLocked?.();
    return await backupUnderLock(profile, runtime, storage, stages, discovered);
  } finally {
    // Side by side: the profile's lock (storage) is not held up by a server that stopped answering.
    await Promise.all([databaseLock?.release(), lock.release()]);
  }
}

/**
 * Refuses (exit 2) a dump the clients found cannot write, before any lock, connection or
 * notification: pg_dump's own lz4 or zstd (`--pg-compress`) needs pg_dump 16 or later.
 */
export async function checkDumpSupport(profile: ResolvedProfile, runtime: Pick<Runtime, 'env'>): Promise<void> {
  const needed = minimumDumpMajorFor(profile.dump.compress);
  if (needed === 0) return;
  const found = await discoverClients('pg_dump', { pgBinDir: profile.pgBinDir, path: runtime.env.PATH });
  if (found.some((client) => client.major >= needed)) return;
  const seen = found.length === 0 ? 'no pg_dump was found' : `pg_dump found: ${found.map((c) => `${c.path} (${c.major})`).join(', ')}`;
  throw new BackupctlError(`--pg-compress ${profile.dump.compress} needs pg_dump ${needed} or later; ${seen}`, {
    exitCode: ExitCode.USAGE,
    hint: `let backupctl compress instead (--compress zstd, the default, needs no particular pg_dump), use --pg-compress 0-9 or gzip, or install the PostgreSQL ${needed}+ client (or set pgBinDir)`,
  });
}

export interface CreateOptions {
  /** `--wait`: wait up to this many milliseconds for the profile's and the database's lock (default: fail at once, exit 4). */
  waitMs?: number | undefined;
  /** Called once both locks are held: the backup has really started (the healthchecks start ping). */
  onLocked?: (() => void) | undefined;
  /** `--recipient`, `--recipients-file`, `--passphrase-file`: added to the profile's encryption. */
  keyFlags?: KeyFlags | undefined;
}

type Discovered = Promise<[ClientBinary[], ClientBinary[], ClientBinary[]]>;

/** Steps 2-5, with the profile lock and the database's advisory lock held. */
async function backupUnderLock(profile: ResolvedProfile, runtime: Runtime, storage: Storage, stages: readonly Stage[], discovered: Discovered): Promise<CreateResult> {
  const { reporter, signal } = runtime;
  const started = runtime.now();
  const startedMs = performance.now();
  throwIfAborted(signal);

  const session = await SnapshotSession.open(profile.connection, { lockWaitTimeout: profile.dump.lockWaitTimeout ?? undefined });
  // pg_dump (and our counts) wait without a word for a lock another session holds: say who.
  const lockWatch = watchLockWaits({
    settings: profile.connection,
    backup: session.backend,
    report: (wait) => reporter.warn(`${describeLockWait(wait)}${profile.dump.lockWaitTimeout ? '' : '; --lock-wait-timeout gives up after a time instead'}`),
    debug: (message) => reporter.debug(message),
  });
  const written: string[] = [];
  const warnings: string[] = [];
  /** A warning of this backup: on stderr now, and in its result (create --json). */
  const warn = (message: string) => {
    warnings.push(message);
    reporter.warn(message);
  };
  // Aborted on interrupt, or when one half of the work (dump, counts) fails, to stop the other.
  const work = new AbortController();
  const onAbort = () => work.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  if (signal.aborted) onAbort(); // an interrupt while the session was opening: the listener came too late
  let env: Awaited<ReturnType<typeof childEnv>> | null = null;
  /** Writers still running (the globals dump beside the artifact): a failed run waits for them before it cleans up. */
  const pending: Array<Promise<unknown>> = [];
  try {
    throwIfAborted(signal);
    const facts = await session.facts();
    const major = serverMajor(facts.serverVersionNum);
    const [dumps, restores, dumpalls] = await discovered;
    const where = profile.pgBinDir ? `pgBinDir ${profile.pgBinDir}` : undefined;
    const pgDump = chooseClient('pg_dump', dumps, Math.max(major, minimumDumpMajorFor(profile.dump.compress)), where);
    const pgRestore = chooseClient('pg_restore', restores, major, where);
    const id = newBackupId(started);
    reporter.info(`backing up ${describeConnection(profile.connection)} (PostgreSQL ${facts.serverVersion}) as ${profile.name}/${id}`);
    reporter.debug(`using ${pgDump.path} ${pgDump.version}; snapshot ${session.snapshotId}`);

    env = await childEnv(profile.connection, runtime.env);
    throwIfAborted(signal);
    const run: ChildRun = { env: env.env, signal: work.signal };
    const { schemas, excludeSchemas, tables, excludeTables } = profile.dump;
    assertPatternsReachable(profile.dump, facts.encoding, profile.connection.database);
    const filtered = schemas.length + excludeSchemas.length + tables.length + excludeTables.length > 0;
    if (!filtered) {
      const unreadable = await session.unreadableRelations({ sequences: !profile.dump.schemaOnly });
      if (unreadable.length > 0) throw unreadableError(profile.connection.user, unreadable);
    }
    const only = filtered
      ? await tablesSelectedBy(
          pgDump.path,
          pgRestore.path,
          { snapshot: session.snapshotId, filters: selectionArgs(profile.dump), lockWaitTimeout: profile.dump.lockWaitTimeout },
          run,
        ).catch(async (error: unknown) => {
          throw (await selectsNothing(profile, profile.connection.database, signal)) ?? error;
        })
      : undefined;
    // A partitioned table or inheritance parent the filters keep while they leave out some of
    // its partitions or children: with --exclude-* too (a schema of old partitions excluded
    // with -N takes the rows of a table in public with it).
    if (only) {
      const filters = [tables.length > 0 && '--table', schemas.length > 0 && '--schema', excludeSchemas.length > 0 && '--exclude-schema', excludeTables.length > 0 && '--exclude-table'];
      const label = filters.filter((name): name is string => typeof name === 'string').join(' and ');
      const remedy = tables.length > 0 ? 'table' : schemas.length > 0 ? 'schema' : 'exclude';
      for (const warning of await session.partialTrees(only, label, remedy)) warn(warning);
    }
    const counting = session.countRows(work.signal, only).catch((error: unknown) => {
      work.abort(error);
      throw error;
    });
    counting.catch(() => undefined);

    // Roles and tablespaces are dumped beside the database, at the same time (they are small).
    const globalsDone: Promise<Sidecar['globals']> = profile.globals
      ? dumpGlobals({ profile, id, storage, stages, pgDumpall: () => chooseClient('pg_dumpall', dumpalls, major, where), rolePasswords: facts.canReadRolePasswords, run, written, runtime, warnings })
      : Promise.resolve({ status: 'skipped', reason: 'disabled (--no-globals)' } as const);
    globalsDone.catch(() => undefined);
    pending.push(globalsDone);
    // What the stored file may weigh, for the part size of object stores (S3: 10,000
    // parts; Azure: 50,000 blocks): a dump holds no indexes and no free space, but text can
    // weigh more than the stored value (bytea as hex: twice), so twice the database's size
    // uncompressed; compressed (our stage or pg_dump's own), the database's size. Parts
    // grow past 8 MiB only for an object expected past ~70 GB, and memory with them.
    const compressed = stages.some((stage) => stage.type === 'compression' && stage.name !== 'none') || (profile.dump.compress !== null && !pgCompressIsOff(profile.dump.compress));
    const expectedBytes = (compressed ? 1 : 2) * facts.sizeBytes;
    const artifact = await dumpArtifact({ profile, id, storage, stages, pgDump, pgRestore, snapshot: session.snapshotId, run, written, runtime, expectedBytes });
    for (const warning of artifact.warnings) warn(warning);
    if (facts.largeObjects > 0 && !profile.dump.schemaOnly && !holdsLargeObjects(artifact.toc)) {
      // pg_dump leaves every large object out of a --table or --schema dump.
      warn(`the database's ${facts.largeObjects} large object(s) are not in this backup (pg_dump leaves them out of a --table or --schema dump)`);
    }
    // A count still running (a huge table, a lock) must not hold up an interrupt or a failure.
    const { tables: counted, unloggedOnStandby } = await unlessAborted(counting, work.signal);
    if (unloggedOnStandby.length > 0) {
      warn(`unlogged tables have no rows on a standby: pg_dump dumps their definition only (${unloggedOnStandby.slice(0, 10).join(', ')}${unloggedOnStandby.length > 10 ? `, and ${unloggedOnStandby.length - 10} more` : ''}); back up the primary to keep their rows`);
    }
    for (const member of await session.extensionTablesWithRows()) {
      warn(`${member.table} belongs to extension ${member.extension} and holds about ${member.rows} row(s), which pg_dump leaves out: a restore has only what the extension's install script puts in it`);
    }
    if (!profile.dump.dataOnly) {
      const reordered = await session.reorderedColumns(only);
      if (reordered.length > 0) warn(reorderedWarning(reordered));
    }
    if (only && !profile.dump.dataOnly) {
      // What the dumped tables use that the archive does not hold (a parent table an
      // --exclude-* left out, a type of a schema --schema did not select): it restores
      // only into a database that has it (verify reports such a backup as NOT VERIFIED).
      // An extension's member is held when the extension is (CREATE EXTENSION makes it).
      const held = new Set(artifact.toc.map((entry) => entry.objectOid));
      // Every relation the archive creates: views and foreign tables need things too.
      const relations = new Set(artifact.toc.filter((entry) => DUMPED_RELATIONS.has(entry.type)).map((entry) => entry.objectOid));
      const outside = new Map<string, string[]>();
      for (const dependency of await session.dependencies(relations)) {
        if (held.has(dependency.oid) || (dependency.extension !== null && held.has(dependency.extension))) continue;
        outside.set(dependency.table, [...(outside.get(dependency.table) ?? []), `${dependency.kind} ${dependency.name}`]);
      }
      // Casts too: an --exclude-* dump holds every cast the database made (they are in no schema).
      const casts = new Set(artifact.toc.filter((entry) => entry.type === 'CAST').map((entry) => entry.objectOid));
      for (const need of await session.castDependencies(casts)) {
        if (held.has(need.oid) || (need.extension !== null && held.has(need.extension))) continue;
        outside.set(need.cast, [...(outside.get(need.cast) ?? []), `${need.kind} ${need.name}`]);
      }
      for (const [table, uses] of outside) {
        warn(`${table} uses ${uses.join(', ')}, which this backup does not hold: it restores only into a database that has ${uses.length === 1 ? 'it' : 'them'}`);
      }
    }
    const globals = await globalsDone;
    await session.close();

    throwIfAborted(signal);
    const sidecar: Sidecar = {
      schemaVersion: SIDECAR_SCHEMA_VERSION,
      id,
      profile: profile.name,
      status: 'completed',
      startedAt: started.toISOString(),
      finishedAt: runtime.now().toISOString(),
      durationMs: Math.round(performance.now() - startedMs),
      tool: { name: 'backupctl', version: VERSION },
      engine: { serverVersion: facts.serverVersion, serverVersionNum: facts.serverVersionNum, pgDumpVersion: pgDump.version },
      source: {
        host: profile.connection.host,
        port: profile.connection.port,
        user: profile.connection.user,
        database: profile.connection.database,
      },
      database: {
        // The name we connected with, not current_database(): see SnapshotSession.facts.
        name: profile.connection.database,
        sizeBytes: facts.sizeBytes,
        encoding: facts.encoding,
        largeObjects: facts.largeObjects,
        publicSchema: facts.publicSchema,
        locale: facts.locale,
        owner: facts.owner,
      },
      dump: {
        ...profile.dump,
        snapshot: session.snapshotId,
        tocEntries: artifact.toc.length,
        largeObjects: holdsLargeObjects(artifact.toc) ? facts.largeObjects : 0,
      },
      artifact: {
        file: artifact.file,
        container: artifact.container,
        bytes: artifact.bytes,
        sha256: artifact.sha256,
        stages: artifact.stages,
        plaintext: artifact.plaintext,
        ...stageSummary(artifact.stages),
      },
      globals,
      tables: countsInArchive(counted, artifact.toc),
      tags: profile.tags,
      note: profile.note,
      verifications: [],
    };
    try {
      await new Catalog(storage).write(sidecar);
    } catch (error) {
      throw storageError(error, storage.location, 'writing the sidecar');
    }
    reporter.info(`backup ${id} completed`);
    return { sidecar, storage: storage.location, warnings };
  } catch (error) {
    work.abort(error);
    // Not close(): its COMMIT would wait behind a row count blocked on a lock. Beside the
    // clean-up of files, not before it: on a server that stopped answering, the session's
    // end waits a moment, and an interrupted run has little time (cli.ts).
    const ending = Promise.all([lockWatch.stop(), session.abort()]);
    // Whatever is still writing stops on the abort above; wait for it, or a put that was
    // about to publish could land after the clean-up and leave a file of a backup that
    // never was (the globals dump runs beside the artifact's).
    await Promise.allSettled(pending);
    // A store that went away keeps what it has: say so (it is an unfinished backup, shown
    // by list --all and removed by prune past --leftover-age), never a silent leftover.
    await Promise.all(
      written.map((key) =>
        storage.remove(key).catch((removeError: unknown) => {
          reporter.warn(`could not remove ${key} of the failed backup (${(removeError as Error).message}): prune removes it once older than --leftover-age`);
        }),
      ),
    );
    await ending;
    if (signal.aborted) throw signal.reason instanceof BackupctlError ? signal.reason : new InterruptedError();
    throw error;
  } finally {
    signal.removeEventListener('abort', onAbort);
    await lockWatch.stop();
    await session.close();
    await env?.dispose();
  }
}

/**
 * Settles like `promise`, or rejects with the abort reason as soon as `signal` aborts; the
 * caller then drops what `promise` waits on (here: the snapshot session's socket).
 */
function unlessAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error as Error);
      },
    );
  });
}

/** Only the tables whose rows the archive holds, in a stable order. */
function countsInArchive(counted: readonly CountedTable[], toc: readonly TocEntry[]): Sidecar['tables'] {
  const withData = tablesWithData(toc);
  return counted
    .filter((table) => withData.has(table.oid))
    .map(({ schema, name, rows }) => ({ schema, name, rows }))
    .sort((a, b) => (a.schema === b.schema ? cmp(a.name, b.name) : cmp(a.schema, b.schema)));
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** What writing one file of a backup needs. */
interface StoreContext {
  profile: ResolvedProfile;
  id: string;
  storage: Storage;
  stages: readonly Stage[];
  run: ChildRun;
  /** Keys written so far: removed when the backup fails. */
  written: string[];
  runtime: Runtime;
  /** What the stored file may weigh, at most (a hint: see PutOptions.expectedBytes). */
  expectedBytes?: number | undefined;
}

interface DumpContext extends StoreContext {
  pgDump: ClientBinary;
  pgRestore: ClientBinary;
  snapshot: string;
}

async function dumpArtifact(ctx: DumpContext): Promise<StoredArtifact> {
  return ctx.profile.dump.format === 'directory' ? dumpDirectoryFormat(ctx) : dumpCustomFormat(ctx);
}

/**
 * Streams `source` through the stages into `<id><baseSuffix><stage suffixes>`; the caller
 * removes it (it is in `written`) when the backup fails.
 */
async function store(ctx: StoreContext, source: Readable, baseSuffix: string, progress?: string): Promise<StoredFile> {
  const { reporter } = ctx.runtime;
  const chain = buildWriteChain(source, ctx.stages, progress ? (bytes) => reporter.progress(progress, bytes) : undefined);
  const file = `${ctx.id}${artifactSuffix(baseSuffix, ctx.stages)}`;
  const key = artifactKey(ctx.profile.name, file);
  ctx.written.push(key);
  try {
    await ctx.storage.put(key, chain.output, { signal: ctx.run.signal, expectedBytes: ctx.expectedBytes });
  } catch (error) {
    // A driver stops reading the caller's stream when it fails, but leaves it open: closed
    // here, so pg_dump sees its stdout go and exits (else it blocks on a full pipe, and the
    // caller waiting for it hangs forever).
    chain.output.destroy();
    if (ctx.runtime.signal.aborted) throw new InterruptedError();
    const reason: unknown = ctx.run.signal?.aborted ? ctx.run.signal.reason : undefined;
    if (reason instanceof BackupctlError) throw reason;
    // A stage that failed (zstd killed, a key problem) says so itself; anything else is the storage's.
    if (error instanceof PipelineError) throw error;
    throw storageError(error, ctx.storage.location, `writing ${file}`);
  }
  const result = chain.result();
  if (progress) reporter.progressDone(progress, result.plaintext.bytes);
  return { file, key, bytes: result.stored.bytes, sha256: result.stored.sha256, plaintext: result.plaintext, stages: result.stages };
}

/**
 * A custom-format archive streams from pg_dump through the stages into storage; its table
 * of contents is read on the way (pg_restore --list reads the plaintext's head, then stops),
 * since the stored bytes may be compressed and encrypted to keys this host does not hold.
 */
async function dumpCustomFormat(ctx: DumpContext): Promise<StoredArtifact> {
  const args = pgDumpArgs(ctx.profile.dump, ctx.snapshot);
  const child = startCustomDump(ctx.pgDump.path, args, ctx.run);
  const gated = pipeThrough(child.stdout, gateOnExit(child.done));
  const tee = teeToSide();
  const toc = readToc(ctx.pgRestore.path, tee.side, ctx.run);
  toc.catch(() => undefined); // awaited below, after the store
  let stored: StoredFile;
  try {
    stored = await store(ctx, pipeThrough(gated, tee.transform), '.dump', 'dump');
  } finally {
    await child.done.catch(() => undefined);
  }
  const warnings = await child.done;
  return { ...stored, container: 'pg-custom', toc: await toc, warnings };
}

/**
 * `pg_dump --format=directory --jobs N` writes into a private scratch directory (the
 * config's workDir, else the OS temp dir); the directory is then stored as one tar
 * stream with toc.dat first, and the scratch directory is removed whatever happens.
 */
async function dumpDirectoryFormat(ctx: DumpContext): Promise<StoredArtifact> {
  const scratch = await scratchDir(ctx.profile.workDir, ctx.id).catch((error: unknown) => {
    throw storageError(error, ctx.profile.workDir ?? tmpdir(), 'creating the scratch directory');
  });
  try {
    const dumpDir = join(scratch, 'dump');
    ctx.runtime.reporter.info(`pg_dump --format=directory --jobs=${ctx.profile.dump.jobs} into ${scratch}`);
    const warnings = await runDirectoryDump(ctx.pgDump.path, pgDumpArgs(ctx.profile.dump, ctx.snapshot, dumpDir), ctx.run).catch(async (error: unknown) => {
      throw await workDirFailure(error, ctx.profile.workDir, { dumping: true });
    });
    const toc = await readToc(ctx.pgRestore.path, dumpDir, ctx.run);
    const names = (await readdir(dumpDir)).sort((a, b) => (a === 'toc.dat' ? -1 : b === 'toc.dat' ? 1 : cmp(a, b)));
    const { create: tarCreate } = await import('tar'); // loaded only for directory-format dumps
    const pack = Readable.from(tarCreate({ cwd: dumpDir, portable: true }, names));
    const stored = await store(ctx, pack, '.dump.tar', 'dump');
    return { ...stored, container: 'tar', toc, warnings };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

interface GlobalsContext extends StoreContext {
  /** The chosen pg_dumpall; throws when there is none suitable (then globals are skipped). */
  pgDumpall: () => ClientBinary;
  /** The role may read role passwords (pg_authid). */
  rolePasswords: boolean;
  warnings: string[];
}

/**
 * Roles and tablespaces, beside the dump and through the same stages (role password
 * hashes are as secret as the data). A role that cannot read pg_authid gets them without
 * password hashes; one that cannot dump them at all gets a warning, not a failed backup
 * (the database itself is what matters most).
 */
async function dumpGlobals(ctx: GlobalsContext): Promise<Sidecar['globals']> {
  let pgDumpall: ClientBinary;
  try {
    pgDumpall = ctx.pgDumpall();
  } catch (error) {
    return skipGlobals(ctx, (error as Error).message);
  }
  // Role passwords only where the role may read them (pg_authid): decided by privilege, up front.
  const rolePasswords = ctx.rolePasswords;
  const child = startGlobalsDump(pgDumpall.path, ctx.profile.connection.database, rolePasswords, ctx.run);
  const before = ctx.written.length;
  try {
    const stored = await store(ctx, pipeThrough(child.stdout, gateOnExit(child.done)), '.globals.sql');
    await child.done;
    if (!rolePasswords) ctx.runtime.reporter.debug('globals dumped without role passwords (no access to pg_authid)');
    return { status: 'included', file: stored.file, bytes: stored.bytes, sha256: stored.sha256, rolePasswords, stages: stored.stages, plaintext: stored.plaintext };
  } catch (error) {
    await child.done.catch(() => undefined);
    if (ctx.runtime.signal.aborted) throw new InterruptedError();
    // Stopped because the backup failed (the dump, a count): no warning of its own.
    if (ctx.run.signal?.aborted) throw error;
    // Only pg_dumpall's own failure skips the globals; a storage or stage failure fails the backup.
    if (!(error instanceof BackupctlError) || error instanceof PipelineError || !(await isChildFailure(child.done))) throw error;
    for (const key of ctx.written.slice(before)) await ctx.storage.remove(key).catch(() => undefined);
    return skipGlobals(ctx, error.message);
  }
}

/** True when `done` (a child's exit) rejected: the child failed. */
async function isChildFailure(done: Promise<unknown>): Promise<boolean> {
  return done.then(
    () => false,
    () => true,
  );
}

function skipGlobals(ctx: GlobalsContext, reason: string): Sidecar['globals'] {
  const message = `roles and tablespaces were not dumped: ${reason}`;
  ctx.warnings.push(message);
  ctx.runtime.reporter.warn(message);
  return { status: 'skipped', reason };
}

/**
 * The error for tables and sequences a whole-database dump would read that the role may not
 * (SnapshotSession.unreadableRelations), naming the first few with their kind, and a hint
 * that fits what they are: a sequence is left out with --exclude-table too (pg_dump's
 * patterns match sequences), or by excluding the table that owns it.
 */
function unreadableError(user: string, unreadable: ReadonlyArray<{ kind: 'table' | 'sequence'; name: string }>): BackupctlError {
  const tables = unreadable.filter((relation) => relation.kind === 'table').length;
  const sequences = unreadable.length - tables;
  const what = [tables > 0 ? `${tables} table(s)` : '', sequences > 0 ? `${sequences} sequence(s)` : ''].filter(Boolean).join(' and ');
  const named = unreadable.slice(0, 5).map((relation) => `${relation.kind} ${relation.name}`).join(', ');
  const grant = sequences === 0 ? 'SELECT on them' : tables === 0 ? 'SELECT on them (GRANT SELECT ON SEQUENCE)' : 'SELECT on those tables and sequences';
  return new BackupctlError(`permission denied: ${user} cannot read ${what} pg_dump would dump: ${named}${unreadable.length > 5 ? ', ...' : ''}`, {
    hint: `grant the backup role ${grant} (or pg_read_all_data), or leave them out with --exclude-table`,
  });
}

/**
 * After pg_dump failed on a --table/--schema selection: the usage error (exit 2) to report
 * when its include patterns select nothing (pg_dump then fails, saying so only in words),
 * else null (its own failure stands).
 */
async function selectsNothing(profile: ResolvedProfile, database: string, signal: AbortSignal): Promise<BackupctlError | null> {
  if (signal.aborted) return null;
  const { schemas, tables } = profile.dump;
  const unmatched = await unmatchedIncludes(profile.connection, database, { schemas, tables }).catch(() => null);
  if (unmatched === null) return null;
  const patterns = (unmatched === '--table' ? tables : schemas).map((pattern) => `${unmatched} '${pattern}'`).join(' ');
  return usageError(`${patterns} selects no ${unmatched === '--table' ? 'table' : 'schema'} in database "${database}": nothing to back up`,
    `patterns are pg_dump's: unquoted letters fold to lower case ("Quoted" keeps case), * and ? are wildcards, schema.table qualifies; psql -c '\\d${unmatched === '--table' ? 't' : 'n'}' lists what there is`,
  );
}

/**
 * pg_dump matches --table/--schema patterns in the database's encoding, and a command line
 * from Node carries UTF-8 only: in a LATIN1 (or other non-UTF-8) database, a pattern with a
 * character outside ASCII never matches (an exclusion silently excludes nothing). Refused
 * before any work (exit 2). SQL_ASCII stores whatever bytes it was given, most often UTF-8,
 * which such a pattern does match.
 */
function assertPatternsReachable(dump: Pick<DumpOptions, 'schemas' | 'excludeSchemas' | 'tables' | 'excludeTables'>, encoding: string, database: string): void {
  if (encoding === 'UTF8' || encoding === 'SQL_ASCII') return;
  const flags: Array<[string, readonly string[]]> = [['--schema', dump.schemas], ['--exclude-schema', dump.excludeSchemas], ['--table', dump.tables], ['--exclude-table', dump.excludeTables]];
  for (const [flag, patterns] of flags) {
    const pattern = patterns.find((value) => /[\u0080-\uffff]/.test(value));
    if (pattern === undefined) continue;
    throw usageError(
      `${flag} ${JSON.stringify(pattern)} cannot match in database "${database}", whose encoding is ${encoding}: pg_dump compares patterns in the database's encoding, and backupctl can pass it only UTF-8`,
      `write each character outside ASCII as ? (any one character), outside double quotes: ${flag} '${asciiPattern(pattern)}'`,
    );
  }
}

/**
 * A pg_dump pattern with each character outside ASCII made a `?` wildcard, the rest as it
 * means: a wildcard must stand outside double quotes (a quoted `?` is a literal), so a
 * quoted part is closed before it and reopened after it, keeping its case.
 * `"Tàble"` -> `"T"?"ble"`, `sch*.tàble` -> `sch*.t?ble`.
 */
export function asciiPattern(pattern: string): string {
  // The pattern as characters, each quoted or not (a doubled quote inside quotes is one).
  const chars: Array<{ char: string; quoted: boolean }> = [];
  const input = [...pattern];
  let quoted = false;
  for (let i = 0; i < input.length; i++) {
    const char = input[i] as string;
    if (char === '"') {
      if (quoted && input[i + 1] === '"') {
        chars.push({ char: '"', quoted: true });
        i += 1;
      } else {
        quoted = !quoted;
      }
      continue;
    }
    chars.push(char.codePointAt(0)! < 0x80 ? { char, quoted } : { char: '?', quoted: false });
  }
  let out = '';
  for (let i = 0; i < chars.length; ) {
    let end = i;
    while (end < chars.length && chars[end]!.quoted === chars[i]!.quoted) end += 1;
    const run = chars.slice(i, end).map((entry) => entry.char).join('');
    out += chars[i]!.quoted ? `"${run.replace(/"/g, '""')}"` : run;
    i = end;
  }
  return out;
}
