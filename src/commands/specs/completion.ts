import type { CommandSpec } from './spec.js';

export const completion: CommandSpec = {
  name: 'completion',
  summary: 'print a shell completion script (bash, zsh or fish)',
  arguments: [{ syntax: '[shell]', description: 'bash, zsh or fish', complete: ['bash', 'zsh', 'fish'] }],
  options: [{ flags: '--values <kind>', description: 'print the completions of profiles, ids or tags (used by the scripts)', choices: ['profiles', 'ids', 'tags'], hidden: true }],
  details: `Commands, options and their fixed values come with the script; profile names (the
config's and the storage's), backup ids (newest first, and "latest") and tags are asked of
backupctl when you press TAB, so they follow the config and the storage, also those the line
names with --config, --storage and --profile (tags: those of the config, its profile tags
and keep-tag rules).`,
  examples: [
    { command: 'source <(backupctl completion bash)', comment: 'this shell; or save it in /etc/bash_completion.d/backupctl' },
    { command: 'mkdir -p ~/.zfunc && backupctl completion zsh > ~/.zfunc/_backupctl', comment: 'with fpath+=~/.zfunc before compinit in ~/.zshrc' },
    { command: 'mkdir -p ~/.config/fish/completions && backupctl completion fish > ~/.config/fish/completions/backupctl.fish' },
  ],
  async run(ctx, args, options) {
    return (await import('../completion.js')).run(args[0] as string | undefined, options as never, ctx);
  },
};
