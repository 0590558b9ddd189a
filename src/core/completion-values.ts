import type { ResolvedSettings } from '../config/resolve.js';
import type { Runtime } from './runtime.js';
import { backupScope, newestIds } from './scope.js';

/** At most this many ids are offered (the newest). */
const MAX_IDS = 50;

/**
 * What the shell completes for `--profile` (the config's profiles and those in the
 * storages' root folders), backup ids (the newest, from listings of recent keys: no
 * sidecar is read) and tags (those the config names).
 */
export async function completionValues(kind: 'profiles' | 'ids' | 'tags', settings: ResolvedSettings, runtime: Pick<Runtime, 'env' | 'cwd' | 'reporter' | 'now'>): Promise<string[]> {
  const scope = backupScope(settings, runtime);
  if (kind === 'profiles') {
    const names = new Set(settings.profiles.keys());
    // The root's folders (one request), not a listing of every key.
    for (const { catalog } of scope.locations) for (const name of await catalog.profileFolders()) names.add(name);
    return [...names].sort();
  }
  if (kind === 'ids') return newestIds(scope, MAX_IDS);
  const tags = new Set<string>();
  for (const profile of [settings.unconfigured('x'), ...settings.profiles.values()]) {
    for (const tag of profile.tags ?? []) tags.add(tag);
    for (const group of profile.retention?.keepTags ?? []) for (const tag of typeof group === 'string' ? [group] : group) tags.add(tag);
  }
  return [...tags].sort();
}
