import { BackupctlError, errnoCode, ExitCode } from '../errors.js';

/**
 * Maps a failure to read or write the storage to one line with a hint. `op` says which
 * the caller was doing: a permission error while listing is about reading, not writing.
 */
export function storageError(error: unknown, location: string, doing: string, op: 'read' | 'write' = 'write'): BackupctlError {
  if (error instanceof BackupctlError) return error;
  const code = errnoCode(error);
  const make = (message: string, hint: string) => new BackupctlError(message, { exitCode: ExitCode.FAILED, hint, cause: error });
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return make(`storage is full: no space left on device while ${doing} in ${location}`, 'free space or choose another --storage; the partial file was removed');
    case 'EACCES':
    case 'EPERM':
      return op === 'read'
        ? make(`cannot read ${location}: permission denied while ${doing}`, 'run as a user that can read the backup directory and its files (check their owner and mode), or choose another --storage')
        : make(`cannot write to ${location}: permission denied while ${doing}`, 'check the owner and mode of the backup directory, or choose another --storage');
    case 'EROFS':
      return make(`cannot write to ${location}: read-only file system`, 'choose another --storage');
    case 'ENOTDIR':
    case 'EEXIST':
      return make(`cannot use ${location} as a backup directory: a file is in the way`, 'choose another --storage');
    default:
      return make(`storage error while ${doing} in ${location}: ${(error as Error)?.message ?? String(error)}`, 'check the storage and retry');
  }
}
