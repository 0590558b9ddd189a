import path from 'node:path';
import { Catalog } from '../catalog/catalog.js';
import { checkDumpSupport, createBackup } from '../core/create.js';
import { resolveProfile, type DumpFlags, type KeyFlags } from '../core/profile.js';
import { withRunReport } from '../core/report-run.js';
import { storageAt } from '../core/storages.js';
import { usageError } from '../errors.js';
import { createJson, renderCreate } from '../output/render.js';
import type { ConnectionFlags } from '../pg/connection.js';
import type { CommandContext, CommandResult } from './context.js';

export interface CreateOptions extends DumpFlags {
  wait?: number;
  recipient?: string[];
  recipientsFile?: string[];
  passphraseFile?: string;
  dbname?: string;
  host?: string;
  port?: number;
  username?: string;
}

/** `-d` takes a database name or a connection URI, as pg_dump's does. */
function connectionFlags(options: CreateOptions, dbUrl: string | undefined): ConnectionFlags {
  const dbname = options.dbname;
  const isUri = dbname !== undefined && /^postgres(ql)?:\/\//.test(dbname);
  if (dbname !== undefined && !isUri && dbname.includes('=')) {
    throw usageError('-d takes a database name or a postgres:// URL; key=value connection strings are not supported', 'e.g. -d postgres://backup@db1:5432/app');
  }
  if (isUri && dbUrl !== undefined) throw usageError('give the connection either as --db-url or as -d URL, not both');
  return {
    url: isUri ? dbname : dbUrl,
    database: isUri ? undefined : dbname,
    host: options.host,
    port: options.port,
    user: options.username,
  };
}

export async function run(options: CreateOptions, ctx: CommandContext): Promise<CommandResult> {
  const { wait, dbname: _d, host: _h, port: _p, username: _u, recipient, recipientsFile, passphraseFile, ...dumpFlags } = options;
  const inCwd = (file: string) => path.resolve(ctx.runtime.cwd, file);
  const keyFlags: KeyFlags = { recipient, recipientsFile: recipientsFile?.map(inCwd), passphraseFile: passphraseFile === undefined ? undefined : inCwd(passphraseFile) };
  const profile = resolveProfile(ctx.settings, { ...connectionFlags(options, ctx.flags.dbUrl), ...dumpFlags });
  for (const note of profile.notes) ctx.runtime.reporter.info(note);
  // --passphrase-file alone sets the profile's recipients aside for this backup (core/keys.ts):
  // their identities will not open it, which whoever relies on them must hear.
  const configured = profile.encryption?.recipients?.length || profile.encryption?.recipientsFile;
  if (keyFlags.passphraseFile !== undefined && !recipient?.length && !recipientsFile?.length && configured) {
    profile.warnings.push(`--passphrase-file: this backup is encrypted to the passphrase alone, not to profile "${profile.name}"'s recipients: their identities will not open it`);
  }
  for (const warning of profile.warnings) ctx.runtime.reporter.warn(warning);
  await checkDumpSupport(profile, ctx.runtime);
  const copies = profile.settings.copies ?? [];
  const copyModule = copies.length > 0 ? await import('./copy.js') : null;
  // Every run is recorded in the profile's run log and notified (see core/report-run.ts),
  // with where it copies the backup next: status finds a copy the run never got to.
  const result = await withRunReport(
    {
      command: 'create',
      profile: profile.name,
      storage: storageAt(ctx.runtime, profile.storage, profile.settings.storageSettings),
      database: profile.connection.database,
      notify: profile.settings.notify,
      copies: copyModule?.copyTargets(ctx, copies, profile.name) ?? [],
    },
    ctx.runtime,
    (started) => createBackup(profile, ctx.runtime, { waitMs: wait, onLocked: started, keyFlags }),
    (created) => ({ id: created.sidecar.id, bytes: created.sidecar.artifact.bytes }),
  );
  // The profile's copies (3-2-1): reported, never a failed backup.
  if (copyModule) {
    const storage = storageAt(ctx.runtime, profile.storage, profile.settings.storageSettings);
    result.copies = await copyModule.copyNewBackup(ctx, { sidecar: result.sidecar, storage, catalog: new Catalog(storage) }, copies);
  }
  // A failed copy was a warning on stderr: in --json it is one too (and in `copies`).
  const copyWarnings = (result.copies ?? []).flatMap((copy) => [
    ...(copy.result === 'failed' ? [`could not copy the backup to ${copy.to}: ${copy.error ?? 'failed'}`] : []),
    ...(copy.caughtUp ?? []).filter((earlier) => earlier.result === 'failed').map((earlier) => `could not copy the earlier backup ${earlier.id} to ${copy.to}: ${earlier.error ?? 'failed'}`),
  ]);
  return { json: createJson({ ...result, warnings: [...profile.warnings, ...result.warnings, ...copyWarnings] }), human: (style) => renderCreate(result, style) };
}
