import { check } from './check.js';
import { completion } from './completion.js';
import { create } from './create.js';
import { del } from './delete.js';
import { list } from './list.js';
import { prune } from './prune.js';
import { rekey } from './rekey.js';
import { restore } from './restore.js';
import { show } from './show.js';
import type { CommandSpec } from './spec.js';
import { status } from './status.js';
import { unlock } from './unlock.js';
import { verify } from './verify.js';

/** Every command, in the order `--help` lists them. */
export const COMMANDS: readonly CommandSpec[] = [create, list, show, verify, restore, prune, del, rekey, status, check, unlock, completion];
