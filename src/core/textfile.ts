import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { BackupctlError, errnoCode, ExitCode } from '../errors.js';

/**
 * Writes a small text file atomically: a temporary file beside it (a dot-file whose name
 * does not end in `.prom`, so node_exporter's textfile collector never reads it half
 * written), flushed, given `mode` whatever the umask (0644 by default: node_exporter runs
 * as another user and must read it), then renamed over the target.
 */
export async function writeFileAtomic(path: string, content: string, mode = 0o644): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.tmp-${randomBytes(6).toString('hex')}`);
  try {
    const handle = await open(temp, 'wx', mode);
    try {
      await handle.chmod(mode);
      await handle.writeFile(content, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true }).catch(() => undefined);
    const code = errnoCode(error);
    throw new BackupctlError(`cannot write ${path}: ${code ?? (error as Error).message}`, {
      exitCode: ExitCode.FAILED,
      hint: code === 'ENOENT' ? 'the directory must exist (e.g. /var/lib/node_exporter/textfile_collector)' : 'check the directory and its permissions',
      cause: error,
    });
  }
}
