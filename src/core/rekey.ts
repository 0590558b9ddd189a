/**
 * `rekey`: changes who can decrypt existing backups without re-encrypting them. The file
 * key in each encrypted file's age header is unwrapped with an identity (or the
 * passphrase) and wrapped again for the new recipients; the payload bytes after the header
 * stay exactly the same, so the plaintext digest in the sidecar still holds.
 *
 * Crash safety: the rekeyed file is written under a new name (`<id>.k<N>.dump.zst.age`,
 * invisible until complete), then the sidecar is replaced atomically to point at it, then
 * the old file is removed. Interrupted anywhere, the sidecar names a complete file that
 * its recorded recipients can open; at worst a stray file of the backup's id is left (the
 * next rekey overwrites it, delete and prune leftovers remove it).
 *
 * Rekeying removes access for the new copy only: whoever kept the old file (or its file
 * key) can still read it. To cut off a leaked key entirely, take new backups.
 */
import { Readable } from 'node:stream';
import { artifactKey, backupRef } from '../catalog/catalog.js';
import { stageSummary, type Sidecar, type StageRecordJson } from '../catalog/sidecar.js';
import { BackupctlError, ExitCode, throwIfAborted, usageError } from '../errors.js';
import { parseRecipient, readHeader, recipientRecord, rewrapHeader, X25519Identity, type Identity, type Recipient } from '../pipeline/age/index.js';
import type { RecipientRecord } from '../pipeline/age/keys.js';
import type { DecodeKeys } from '../pipeline/codecs/index.js';
import { DigestStream, type Digest } from '../pipeline/digest.js';
import type { Storage } from '../storage/storage.js';
import { identitiesOf, hasKeys } from './keys.js';
import { acquireProfileLock } from './lock.js';
import type { Runtime } from './runtime.js';
import { findBackup, scanScope, type BackupScope, type LocatedBackup } from './scope.js';
import { storageError } from './storage-errors.js';

export interface RekeyRequest {
  scope: BackupScope;
  /** Ids (or unique prefixes) or `latest`; empty with `all`. */
  refs: string[];
  /** Every encrypted backup in scope. */
  all: boolean;
  /** Recipients to add (`age1...` strings, parsed by the caller). */
  add: Recipient[];
  /** Recipients to drop: `age1...` keys, `x25519:sha256:...` fingerprints, or `passphrase`. */
  remove: string[];
  /** Public keys the caller knows (the profile's recipients, ...): kept recipients need theirs. */
  known: (profile: string) => Recipient[];
  /** What the file keys are unwrapped with (a profile's identities and passphrase, and the flags'). */
  keys: (profile: string) => DecodeKeys;
  dryRun: boolean;
  waitMs?: number | undefined;
}

export interface RekeyedBackup {
  id: string;
  profile: string;
  storage: string;
  /** Recipient fingerprints before and after (`passphrase (scrypt...)` for a passphrase). */
  before: string[];
  after: string[];
  /** Files rewritten: old name -> new name. */
  files: Array<{ from: string; to: string }>;
  /** done: rewritten; unchanged: already encrypted to exactly the new set; planned: a dry run. */
  result: 'done' | 'unchanged' | 'planned' | 'failed';
  error?: string;
  /** With `error`: the exit code of the failure behind it (3: the backup is corrupt, see rekeyExitCode). */
  errorExitCode?: number;
}

/**
 * 0 when nothing failed; 3 when a backup failed because it is corrupt (its header damaged or
 * not the one its sidecar records, its file not the recorded one); 2 when every failure was
 * a key that opens nothing (as verify and restore say of a wrong key); else 1 (the storage).
 */
export function rekeyExitCode(backups: readonly RekeyedBackup[]): number {
  const failed = backups.filter((b) => b.result === 'failed');
  if (failed.length === 0) return ExitCode.OK;
  if (failed.some((b) => b.errorExitCode === ExitCode.VERIFY_FAILED)) return ExitCode.VERIFY_FAILED;
  return failed.every((b) => b.errorExitCode === ExitCode.USAGE) ? ExitCode.USAGE : ExitCode.FAILED;
}

export interface RekeyResult {
  dryRun: boolean;
  backups: RekeyedBackup[];
  /** Backups in scope that are not encrypted (with --all): left as they are. */
  notEncrypted: string[];
}

/** Runs one profile's part as a reported run (the command wraps it: run log, notifications). */
export type ProfileRun = (profile: string, storage: Storage, work: () => Promise<RekeyedBackup[]>) => Promise<RekeyedBackup[]>;

const PASSPHRASE = 'passphrase';

export async function rekeyBackups(request: RekeyRequest, runtime: Runtime, report: ProfileRun = (_p, _s, work) => work()): Promise<RekeyResult> {
  if (request.all === (request.refs.length > 0)) throw usageError('rekey needs backup ids, or --all (not both)');
  if (request.add.length === 0 && request.remove.length === 0) {
    throw usageError('nothing to change: give --add-recipient (or --recipients-file) and/or --remove-recipient');
  }
  const removed = new Set(request.remove.map(fingerprintOfRemoval));
  const chosen: LocatedBackup[] = [];
  const notEncrypted: string[] = [];
  if (request.all) {
    for (const backup of (await scanScope(request.scope)).backups) {
      if (encryptionOf(backup.sidecar)) chosen.push(backup);
      else notEncrypted.push(backupRef(backup.sidecar));
    }
  } else {
    for (const ref of request.refs) {
      const backup = await findBackup(request.scope, ref);
      if (!encryptionOf(backup.sidecar)) {
        throw usageError(`backup ${backupRef(backup.sidecar)} is not encrypted: rekey changes the recipients of encrypted backups only`, 'new backups are encrypted once the profile names recipients (encryption.recipients)');
      }
      if (!chosen.some((b) => b.sidecar.id === backup.sidecar.id && b.storage === backup.storage)) chosen.push(backup);
    }
  }
  // Every backup's new recipients are worked out before anything is written: a missing key is exit 2 with nothing changed.
  const plans = chosen.map((backup) => ({ backup, ...planFor(backup.sidecar, request, removed) }));

  const result: RekeyResult = { dryRun: request.dryRun, backups: [], notEncrypted };
  const byProfile = new Map<string, typeof plans>();
  for (const plan of plans) {
    const key = `${plan.backup.storage.location}\u0000${plan.backup.sidecar.profile}`;
    byProfile.set(key, [...(byProfile.get(key) ?? []), plan]);
  }
  for (const group of byProfile.values()) {
    const { storage, sidecar: first } = group[0]!.backup;
    const work = async (): Promise<RekeyedBackup[]> => {
      const done: RekeyedBackup[] = [];
      const lock = request.dryRun ? null : await acquireProfileLock({ storage, profile: first.profile, command: 'rekey', waitMs: request.waitMs, runtime });
      try {
        for (const plan of group) {
          throwIfAborted(runtime.signal);
          const entry: RekeyedBackup = { id: plan.backup.sidecar.id, profile: plan.backup.sidecar.profile, storage: storage.location, before: plan.before, after: plan.after, files: [], result: 'unchanged' };
          done.push(entry);
          if (!plan.changed) continue;
          if (request.dryRun) {
            entry.result = 'planned';
            entry.files = filesOf(plan.backup.sidecar).map((file) => ({ from: file.name, to: nextName(file.name, plan.backup.sidecar.id) }));
            continue;
          }
          try {
            entry.files = await rekeyOne(plan.backup, plan.recipients, request.keys(plan.backup.sidecar.profile), runtime);
            entry.result = 'done';
            runtime.reporter.info(`rekeyed ${backupRef(plan.backup.sidecar)}: ${plan.after.join(', ')}`);
          } catch (error) {
            if (runtime.signal.aborted) throw error;
            // A key that opens nothing, or a damaged header, stops this backup, not the others.
            if (!(error instanceof BackupctlError)) throw error;
            entry.result = 'failed';
            entry.error = error.message;
            entry.errorExitCode = error.exitCode;
            runtime.reporter.warn(`could not rekey ${backupRef(plan.backup.sidecar)}: ${error.message}`);
          }
        }
      } finally {
        await lock?.release();
      }
      return done;
    };
    result.backups.push(...(await report(first.profile, storage, work)));
  }
  return result;
}

function encryptionOf(sidecar: Sidecar): Extract<StageRecordJson, { type: 'encryption' }> | undefined {
  return sidecar.artifact.stages.find((stage): stage is Extract<StageRecordJson, { type: 'encryption' }> => stage.type === 'encryption');
}

/** A recipient record as people read it: its fingerprint, or `passphrase`. */
function labelOf(record: RecipientRecord): string {
  return record.scheme === 'x25519' ? record.fingerprint : PASSPHRASE;
}

/** What `--remove-recipient` names, as a label: an `age1...` key, a fingerprint, or `passphrase`. */
function fingerprintOfRemoval(text: string): string {
  if (text === PASSPHRASE || /^x25519:sha256:[0-9a-f]{16}$/.test(text)) return text;
  try {
    return parseRecipient(text).fingerprint();
  } catch (error) {
    throw new BackupctlError(`--remove-recipient ${JSON.stringify(text.slice(0, 80))}: not an age recipient, a fingerprint (x25519:sha256:...) or "passphrase"`, { exitCode: ExitCode.USAGE, cause: error });
  }
}

interface Plan {
  before: string[];
  after: string[];
  recipients: Recipient[];
  changed: boolean;
}

/**
 * The new recipients of one backup: its current ones minus the removed, plus the added.
 * A kept X25519 recipient must be re-wrapped to, so its public key must be known (the
 * profile's recipients, an identity given, --add-recipient); a passphrase is kept only alone.
 */
function planFor(sidecar: Sidecar, request: RekeyRequest, removed: ReadonlySet<string>): Plan {
  const current = encryptionOf(sidecar)!.recipients;
  const before = current.map(labelOf);
  const known = new Map<string, Recipient>();
  const keys = request.keys(sidecar.profile);
  for (const recipient of [...request.known(sidecar.profile), ...(keys.identities ?? []).flatMap(publicKeyOf), ...request.add]) {
    const record = recipientRecord(recipient);
    if (record.scheme === 'x25519') known.set(record.fingerprint, recipient);
  }
  const kept = current.filter((record) => !removed.has(labelOf(record)));
  const missing = kept.filter((record) => record.scheme === 'x25519' && !known.has(record.fingerprint));
  if (missing.length > 0) {
    throw usageError(
      `backup ${backupRef(sidecar)} keeps recipient(s) ${missing.map(labelOf).join(', ')} whose public key is not known here`,
      'give each with --add-recipient age1... (or --recipients-file), or drop it with --remove-recipient',
    );
  }
  const keepsPassphrase = kept.some((record) => record.scheme === 'scrypt');
  if (keepsPassphrase && (request.add.length > 0 || kept.length > 1)) {
    throw usageError(`backup ${backupRef(sidecar)} is encrypted to a passphrase, which the age format allows only alone`, 'add --remove-recipient passphrase to move it to recipients');
  }
  if (keepsPassphrase) return { before, after: before, recipients: [], changed: false };
  const recipients = new Map<string, Recipient>();
  for (const record of kept) if (record.scheme === 'x25519') recipients.set(record.fingerprint, known.get(record.fingerprint)!);
  for (const recipient of request.add) recipients.set(labelOf(recipientRecord(recipient)), recipient);
  if (recipients.size === 0) {
    throw usageError(`rekeying ${backupRef(sidecar)} would leave it with no recipient: nobody could ever read it`, 'add a recipient with --add-recipient');
  }
  const after = [...recipients.keys()];
  const changed = after.length !== before.length || after.some((label) => !before.includes(label));
  return { before, after, recipients: [...recipients.values()], changed };
}

function publicKeyOf(identity: Identity): Recipient[] {
  return identity instanceof X25519Identity ? [identity.recipient] : [];
}

/** The encrypted files of a backup: the artifact, and the globals file when it went through age too. */
interface EncryptedFile {
  name: string;
  role: 'artifact' | 'globals';
  bytes: number;
  /** The stored digest the sidecar records: the old file must still have it before it is rewritten. */
  sha256: string;
  /** What the sidecar records of the file's recipients: its header must match (see age/recorded.ts). */
  recorded: RecipientRecord[];
}

function filesOf(sidecar: Sidecar): EncryptedFile[] {
  const recordedIn = (stages: readonly StageRecordJson[]) => stages.flatMap((stage) => (stage.type === 'encryption' ? stage.recipients : []));
  const files: EncryptedFile[] = [
    { name: sidecar.artifact.file, role: 'artifact', bytes: sidecar.artifact.bytes, sha256: sidecar.artifact.sha256, recorded: recordedIn(sidecar.artifact.stages) },
  ];
  const globals = sidecar.globals;
  if (globals.status === 'included' && globals.stages.some((stage) => stage.type === 'encryption')) {
    files.push({ name: globals.file, role: 'globals', bytes: globals.bytes, sha256: globals.sha256, recorded: recordedIn(globals.stages) });
  }
  return files;
}

/** `<id>.dump.zst.age` -> `<id>.k1.dump.zst.age`; `<id>.k1.dump...` -> `<id>.k2.dump...`. */
export function nextName(file: string, id: string): string {
  const rest = file.slice(id.length + 1);
  const match = /^k(\d{1,6})\.(.+)$/.exec(rest);
  return match ? `${id}.k${Number(match[1]) + 1}.${match[2]}` : `${id}.k1.${rest}`;
}

/** Rewrites one backup's encrypted files for `recipients`, then its sidecar, then removes the old files. */
async function rekeyOne(backup: LocatedBackup, recipients: Recipient[], keys: DecodeKeys, runtime: Runtime): Promise<Array<{ from: string; to: string }>> {
  const { storage, catalog } = backup;
  if (!hasKeys(keys)) {
    throw usageError(`nothing to unwrap the file key of ${backupRef(backup.sidecar)} with`, "give --identity FILE (or --passphrase-file), or set the profile's encryption.identityFile");
  }
  const identities = identitiesOf(keys);
  // Re-read under the lock: the sidecar may have changed since the scan.
  const sidecar = await catalog.readForUse(backup.sidecar.profile, backup.sidecar.id);
  const written: string[] = [];
  const renamed: Array<{ from: string; to: string }> = [];
  const updated: Sidecar = structuredClone(sidecar);
  const newRecords = recipients.map(recipientRecord);
  try {
    for (const { name, role, bytes, sha256, recorded } of filesOf(sidecar)) {
      const to = nextName(name, sidecar.id);
      const toKey = artifactKey(sidecar.profile, to);
      written.push(toKey);
      // The payload is copied as it is; only the header (a stanza per recipient) changes size.
      const expectedBytes = bytes + 1024 * (recipients.length + 1);
      const digest = await rewriteFile(storage, artifactKey(sidecar.profile, name), toKey, identities, recipients, {
        signal: runtime.signal,
        expectedBytes,
        recorded,
        stored: { bytes, sha256 },
      });
      renamed.push({ from: name, to });
      if (role === 'artifact') {
        const stages = withRecipients(updated.artifact.stages, newRecords);
        updated.artifact = { ...updated.artifact, file: to, bytes: digest.bytes, sha256: digest.sha256, stages, ...stageSummary(stages) };
      } else if (updated.globals.status === 'included') {
        updated.globals = { ...updated.globals, file: to, bytes: digest.bytes, sha256: digest.sha256, stages: withRecipients(updated.globals.stages, newRecords) };
      }
    }
    throwIfAborted(runtime.signal);
    await catalog.write(updated);
  } catch (error) {
    await Promise.all(written.map((key) => storage.remove(key).catch(() => undefined)));
    if (error instanceof BackupctlError || runtime.signal.aborted) throw error;
    throw storageError(error, storage.location, `rekeying ${backupRef(sidecar)}`);
  }
  // The sidecar names the new files: the old ones go (a failure leaves a stray file, not a broken backup).
  for (const { from } of renamed) {
    await storage.remove(artifactKey(sidecar.profile, from)).catch((error: unknown) => {
      runtime.reporter.warn(`rekeyed ${backupRef(sidecar)}, but could not remove the old ${from}: ${(error as Error).message}`);
    });
  }
  return renamed;
}

function withRecipients(stages: readonly StageRecordJson[], recipients: RecipientRecord[]): StageRecordJson[] {
  return stages.map((stage) => (stage.type === 'encryption' ? { ...stage, recipients } : stage));
}

/**
 * Streams `from` with a new header into `to`; returns the digest of what was stored. The old
 * file is hashed as it is read and must have the digest its sidecar records (`stored`): a
 * payload damaged or swapped since would otherwise get a new, matching stored digest and
 * pass verify's checksum level. A mismatch fails the write before it completes (exit 3).
 */
async function rewriteFile(
  storage: Storage,
  from: string,
  to: string,
  identities: Identity[],
  recipients: Recipient[],
  { signal, expectedBytes, recorded, stored }: { signal: AbortSignal; expectedBytes: number; recorded: readonly RecipientRecord[]; stored: Digest },
): Promise<Digest> {
  let source: Readable;
  try {
    source = await storage.get(from);
  } catch (error) {
    if (error instanceof BackupctlError) throw error;
    throw storageError(error, storage.location, `reading ${from}`, 'read');
  }
  let mismatch: BackupctlError | null = null;
  const old = new DigestStream(undefined, (digest) => {
    if (digest.bytes === stored.bytes && digest.sha256 === stored.sha256) return null;
    mismatch = new BackupctlError(
      `${from} does not match its sidecar (${digest.bytes} bytes, sha256 ${digest.sha256}; recorded ${stored.bytes} bytes, sha256 ${stored.sha256}): not rekeyed`,
      { exitCode: ExitCode.VERIFY_FAILED, hint: 'the backup is corrupt: run "backupctl verify" on it, and keep it until you know why' },
    );
    return mismatch;
  });
  source.on('error', (error) => old.destroy(error));
  // Its failures are taken from `mismatch`, readHeader and the payload's reader: a file read
  // whole at once (a small globals file) fails its digest while the header is being
  // rewrapped, when nothing reads it yet (an unhandled 'error' ended the process, exit 1).
  old.on('error', () => undefined);
  source.pipe(old);
  try {
    const { header, payload } = await readHeader(old);
    // A header that is not the recorded one, or a recorded identity's stanza that does not
    // open, is damage (exit 3), not a wrong key: the backup is left as it is.
    const newHeader = await rewrapHeader(header, identities, recipients, recorded);
    // Read to its end meanwhile and found damaged (or unreadable): nothing is written.
    if (old.errored) throw mismatch ?? old.errored;
    const digest = new DigestStream();
    const output = Readable.from(concatenate(newHeader, payload));
    output.on('error', (error) => digest.destroy(error));
    // The put has its own listener; the old file's failure may reach this stream after the
    // put has settled and let go of it (an unhandled 'error': the process ended, exit 1).
    digest.on('error', () => undefined);
    await storage.put(to, output.pipe(digest), { signal, expectedBytes });
    if (mismatch) throw mismatch; // a store that took the stream's end for a clean one
    return digest.digest();
  } catch (error) {
    source.destroy();
    if (mismatch) throw mismatch;
    if (error instanceof BackupctlError) throw error;
    throw storageError(error, storage.location, `writing ${to}`);
  }
}

async function* concatenate(head: Buffer, rest: Readable): AsyncGenerator<Buffer> {
  yield head;
  for await (const chunk of rest) yield chunk as Buffer;
}
