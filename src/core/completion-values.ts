import type { ResolvedSettings } from '../config/resolve.js';
import type { Runtime } from './runtime.js';
import { backupScope } from './scope.js';

/** At most this many ids are offered (the newest). */
const MAX_IDS = 50;

/**
 * What the shell completes for `--profile` (the config's profiles and those in the
 * storages), backup ids (the newest, from a listing: no sidecar is read) and tags (those
 * the config names).
 */
export async function completionValues(kind: 'profiles' | 'ids' | 'tags', settings: ResolvedSettings, runtime: Pick<Runtime, 'env' | 'cwd' | 'reporter'>): Promise<string[]> {
  const scope = backupScope(settings, runtime);
  if (kind === 'profiles') {
    const names = new Set(settings.profiles.keys());
    for (const { catalog } of scope.locations) for (const name of await catalog.profiles()) names.add(name);
    return [...names].sort();
  }
  if (kind === 'ids') {
    const ids: string[] = [];
    for (const { catalog } of scope.locations) ids.push(...(await catalog.completed(scope.profile)).map((entry) => entry.id));
    return [...new Set(ids)].sort().reverse().slice(0, MAX_IDS);
  }
  const tags = new Set<string>();
  for (const profile of [settings.unconfigured('x'), ...settings.profiles.values()]) {
    for (const tag of profile.tags ?? []) tags.add(tag);
    for (const group of profile.retention?.keepTags ?? []) for (const tag of typeof group === 'string' ? [group] : group) tags.add(tag);
  }
  return [...tags].sort();
}
