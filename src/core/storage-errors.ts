import { BackupctlError, errnoCode, ExitCode } from '../errors.js';
import { StorageError } from '../storage/storage.js';

/**
 * Maps a failure to read or write the storage to one line with a hint. `op` says which
 * the caller was doing: a permission error while listing is about reading, not writing.
 * Typed storage errors carry a stable code (and the errno underneath, for local storage).
 */
export function storageError(error: unknown, location: string, doing: string, op: 'read' | 'write' = 'write'): BackupctlError {
  const code = error instanceof StorageError ? (error.errno ?? error.code) : errnoCode(error);
  if (error instanceof BackupctlError && !(error instanceof StorageError)) return error;
  const hintOf = (fallback: string) => (error instanceof StorageError ? error.hint : undefined) ?? fallback;
  const make = (message: string, hint: string | undefined, exitCode: BackupctlError['exitCode'] = ExitCode.FAILED) =>
    new BackupctlError(message, { exitCode, hint, cause: error });
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT':
    case 'no-space':
      return make(`storage is full: no space left on device while ${doing} in ${location}`, 'free space or choose another --storage; the partial file was removed');
    case 'EACCES':
    case 'EPERM':
    case 'permission':
      return op === 'read'
        ? make(
            `cannot read ${location}: permission denied${error instanceof StorageError && error.key ? ` reading ${error.key}` : ''} while ${doing}`,
            hintOf('run as a user that can read the backup directory and its files (check their owner and mode), or choose another --storage'),
          )
        : make(`cannot write to ${location}: permission denied while ${doing}`, hintOf('check the owner and mode of the backup directory, or choose another --storage'));
    case 'EROFS':
      return make(`cannot write to ${location}: read-only file system`, 'choose another --storage');
    case 'ENOTDIR':
    case 'EEXIST':
      return make(`cannot use ${location} as a backup directory: a file is in the way`, 'choose another --storage');
    default:
      if (error instanceof StorageError) return make(`${doing} in ${location}: ${error.message}`, error.hint ?? 'check the storage and retry', error.exitCode);
      return make(`storage error while ${doing} in ${location}: ${(error as Error)?.message ?? String(error)}`, 'check the storage and retry');
  }
}
