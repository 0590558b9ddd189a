import { randomBytes } from 'node:crypto';
import { NotFoundError, type Storage } from './storage.js';

export interface CreateIfAbsentOptions {
  /** True for a claim (the data its writer meant to create the key with) whose writer is known to be gone. */
  abandoned?: (claim: Buffer) => boolean;
}

/** A claim this much older than ours was left by a writer that died mid-claim. */
const CLAIM_STALE_MS = 30_000;

/** A claim holds what its writer creates the key with: a lock, a few hundred bytes. */
const MAX_CLAIM_BYTES = 64 * 1024;

/**
 * Creates `key` with `data` only if it does not exist: exactly one of any number of
 * concurrent callers that find it absent creates it (locks are built on this).
 *
 * Stores that enforce a conditional create (capability `conditionalCreate`) do it in one
 * request (putIfAbsent). The others (an S3-compatible store that ignores If-None-Match)
 * get restic's write-then-check scheme, which needs only an atomic put and a listing that
 * shows what was written before it:
 *   1. write a claim object of our own beside the key (`<dir>/claims/<name>.<time>-<token>`);
 *   2. list the claims: if any other live claim is there, remove ours and give up;
 *   3. if the key exists, remove our claim and give up;
 *   4. write the key, then remove our claim.
 * A writer that gets to (4) saw no other claim after writing its own: any other writer
 * that started before our claim was written is seen at (2) or finished (its key is seen
 * at (3)); any that starts later sees our claim at its (2). So at most one writes the key.
 * Two writers that claim at the same moment may both give up: the caller retries (with
 * --wait) or reports the profile busy, which is safe. A claim left by a writer that died
 * is ignored once it is CLAIM_STALE_MS older than ours (by the store's own clock), or at
 * once when `options.abandoned` says so of its content (a writer of this host that no
 * longer runs: a `kill -9` between (1) and the removal of its claim).
 */
export async function createIfAbsent(storage: Storage, key: string, data: Buffer, options: CreateIfAbsentOptions = {}): Promise<boolean> {
  const capabilities = await storage.open();
  if (capabilities.conditionalCreate) return storage.putIfAbsent(key, data);
  const slash = key.lastIndexOf('/');
  const dir = slash < 0 ? '' : key.slice(0, slash);
  const name = key.slice(slash + 1);
  const claimsPrefix = dir === '' ? 'claims' : `${dir}/claims`;
  const mine = `${claimsPrefix}/${name}.${Date.now()}-${randomBytes(6).toString('hex')}`;
  await storage.putBytes(mine, data);
  try {
    const claims = (await storage.list(claimsPrefix)).filter((object) => object.key.slice(claimsPrefix.length + 1).startsWith(`${name}.`));
    const own = claims.find((object) => object.key === mine);
    const ownTime = own?.modifiedAt.getTime() ?? Date.now();
    for (const other of claims) {
      if (other.key === mine) continue;
      if (ownTime - other.modifiedAt.getTime() > CLAIM_STALE_MS || (await abandonedClaim(storage, other.key, options))) {
        await storage.remove(other.key).catch(() => undefined);
        continue;
      }
      return false;
    }
    try {
      await storage.stat(key);
      return false;
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
    }
    await storage.putBytes(key, data);
    return true;
  } finally {
    await storage.remove(mine).catch(() => undefined);
  }
}

/** True when the claim's content says its writer is gone; a claim removed meanwhile counts as gone too. */
async function abandonedClaim(storage: Storage, key: string, options: CreateIfAbsentOptions): Promise<boolean> {
  if (!options.abandoned) return false;
  try {
    return options.abandoned(await storage.getBytes(key, MAX_CLAIM_BYTES));
  } catch (error) {
    if (error instanceof NotFoundError) return true;
    return false;
  }
}
