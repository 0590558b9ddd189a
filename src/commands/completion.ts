import { completionValues } from '../core/completion-values.js';
import { usageError } from '../errors.js';
import { completionScript, SHELLS, type Shell } from '../output/completion.js';
import type { CommandContext, CommandResult } from './context.js';
import { COMMANDS } from './specs/index.js';
import { GLOBAL_OPTIONS } from './specs/spec.js';

export async function run(shell: string | undefined, options: { values?: 'profiles' | 'ids' | 'tags' }, ctx: CommandContext): Promise<CommandResult> {
  if (options.values !== undefined) {
    // Completion must never print an error into the shell's line: nothing on failure.
    const values = await completionValues(options.values, ctx.settings, ctx.runtime).catch(() => [] as string[]);
    return { json: values, human: () => values.join('\n') };
  }
  if (shell === undefined || !(SHELLS as readonly string[]).includes(shell)) {
    throw usageError(`which shell? expected ${SHELLS.join(', ')}${shell === undefined ? '' : `, got ${JSON.stringify(shell)}`}`, 'e.g. source <(backupctl completion bash)');
  }
  const script = completionScript(shell as Shell, COMMANDS, GLOBAL_OPTIONS);
  return { json: { shell, script }, human: () => script };
}
