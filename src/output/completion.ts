/**
 * Shell completion scripts for bash, zsh and fish, generated from the command definitions
 * (commands/specs/): every command, alias, option and fixed choice. Values that depend on
 * the machine (profile names, backup ids, tags) are asked of backupctl itself when the
 * shell completes (`backupctl completion --values profiles|ids|tags`), so they follow the
 * config and the storage without regenerating the script.
 */
import type { Completion, CommandSpec, OptionSpec } from '../commands/specs/spec.js';

export type Shell = 'bash' | 'zsh' | 'fish';
export const SHELLS: readonly Shell[] = ['bash', 'zsh', 'fish'];

interface Flag {
  long: string;
  short: string | undefined;
  takesValue: boolean;
  description: string;
  complete: Completion | undefined;
  choices: readonly string[] | undefined;
}

function flagOf(option: OptionSpec): Flag {
  const match = /^(?:-(\w), )?(--[\w-]+)(?: [<[].*)?$/.exec(option.flags);
  if (!match?.[2]) throw new Error(`cannot read option flags ${option.flags}`);
  return {
    long: match[2],
    short: match[1] ? `-${match[1]}` : undefined,
    takesValue: /[<[]/.test(option.flags),
    description: option.description,
    complete: option.complete,
    choices: option.choices,
  };
}

/** The shell words that complete a value. */
function dynamic(kind: 'profiles' | 'ids' | 'tags'): string {
  return `backupctl completion --values ${kind} 2>/dev/null`;
}

function choicesOf(flag: Flag): readonly string[] | undefined {
  if (flag.choices) return flag.choices;
  return Array.isArray(flag.complete) ? (flag.complete as readonly string[]) : undefined;
}

// ---------------------------------------------------------------------------------------
// bash

function bashValueCase(flags: Flag[]): string {
  const lines: string[] = [];
  const seen = new Set<string>();
  for (const flag of flags) {
    if (!flag.takesValue || seen.has(flag.long)) continue;
    seen.add(flag.long);
    const names = [flag.long, flag.short].filter(Boolean).join('|');
    const choices = choicesOf(flag);
    let action: string;
    if (choices) action = `COMPREPLY=($(compgen -W "${choices.join(' ')}" -- "$cur"))`;
    else if (flag.complete === 'profile') action = `COMPREPLY=($(compgen -W "$(${dynamic('profiles')})" -- "$cur"))`;
    else if (flag.complete === 'tag') action = `COMPREPLY=($(compgen -W "$(${dynamic('tags')})" -- "$cur"))`;
    else if (flag.complete === 'file') action = 'COMPREPLY=($(compgen -f -- "$cur"))';
    else if (flag.complete === 'directory') action = 'COMPREPLY=($(compgen -d -- "$cur"))';
    else action = 'COMPREPLY=()';
    lines.push(`    ${names}) ${action}; return ;;`);
  }
  return lines.join('\n');
}

function bash(commands: readonly CommandSpec[], globals: readonly OptionSpec[]): string {
  const globalFlags = globals.map(flagOf);
  const allFlags = [...globalFlags, ...commands.flatMap((c) => c.options.map(flagOf))];
  const names = commands.flatMap((c) => [c.name, ...(c.aliases ?? [])]);
  const flagWords = (flags: Flag[]) => flags.flatMap((f) => [f.long, ...(f.short ? [f.short] : [])]).join(' ');
  const perCommand = commands
    .map((c) => `    ${[c.name, ...(c.aliases ?? [])].join('|')}) opts="${flagWords(c.options.map(flagOf))}" ;;`)
    .join('\n');
  const backupArgs = commands.filter((c) => c.arguments?.some((a) => a.complete === 'backup')).flatMap((c) => [c.name, ...(c.aliases ?? [])]);
  return `# bash completion for backupctl. Load it with:  source <(backupctl completion bash)
# or save it as /etc/bash_completion.d/backupctl (or ~/.local/share/bash-completion/completions/backupctl).
_backupctl() {
  local cur prev cmd opts i
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  case "$prev" in
${bashValueCase(allFlags)}
  esac
  cmd=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "\${COMP_WORDS[i]}" in
      -*) ;;
      *) cmd="\${COMP_WORDS[i]}"; break ;;
    esac
  done
  if [[ -z "$cmd" ]]; then
    COMPREPLY=($(compgen -W "${names.join(' ')} ${flagWords(globalFlags)} --help" -- "$cur"))
    return
  fi
  case "$cmd" in
${perCommand}
    *) opts="" ;;
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$opts ${flagWords(globalFlags)} --help" -- "$cur"))
    return
  fi
  case "$cmd" in
    ${backupArgs.join('|')}) COMPREPLY=($(compgen -W "latest $(${dynamic('ids')})" -- "$cur")) ;;
    completion) COMPREPLY=($(compgen -W "${SHELLS.join(' ')}" -- "$cur")) ;;
  esac
}
complete -F _backupctl backupctl
`;
}

// ---------------------------------------------------------------------------------------
// zsh

function zshEscape(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/'/g, "'\\''").replace(/\[/g, '\\[').replace(/\]/g, '\\]').replace(/:/g, '\\:');
}

function zshAction(flag: Flag): string {
  const choices = choicesOf(flag);
  if (choices) return `:value:(${choices.join(' ')})`;
  switch (flag.complete) {
    case 'profile':
      return ':profile:_backupctl_values profiles';
    case 'tag':
      return ':tag:_backupctl_values tags';
    case 'file':
      return ':file:_files';
    case 'directory':
      return ':directory:_files -/';
    default:
      return ':value: ';
  }
}

function zshSpecs(flags: Flag[]): string[] {
  return flags.flatMap((flag) => {
    const description = zshEscape(flag.description);
    const action = flag.takesValue ? zshAction(flag) : '';
    const forms = [flag.takesValue ? `${flag.long}=` : flag.long, ...(flag.short ? [flag.takesValue ? `${flag.short}+` : flag.short] : [])];
    return forms.map((form) => `'${form}[${description}]${action}'`);
  });
}

function zsh(commands: readonly CommandSpec[], globals: readonly OptionSpec[]): string {
  const globalSpecs = zshSpecs(globals.map(flagOf));
  const described = commands.flatMap((c) => [c.name, ...(c.aliases ?? [])].map((name) => `'${name}:${zshEscape(c.summary)}'`));
  const cases = commands
    .map((c) => {
      const args = (c.arguments ?? []).map((a) => {
        const many = a.syntax.includes('...') ? '*' : '1';
        const what = a.complete === 'backup' ? ':backup:_backupctl_values ids latest' : a.syntax.includes('shell') ? `:shell:(${SHELLS.join(' ')})` : ': ';
        return `'${many}${what}'`;
      });
      const specs = [...zshSpecs(c.options.map(flagOf)), ...args].map((s) => `        ${s}`).join(' \\\n');
      return `    ${[c.name, ...(c.aliases ?? [])].join('|')})\n      _arguments -s "\${global[@]}" \\\n${specs} ;;`;
    })
    .join('\n');
  return `#compdef backupctl
# zsh completion for backupctl. Save it as _backupctl in a directory of $fpath
# (e.g. backupctl completion zsh > ~/.zfunc/_backupctl, with fpath+=~/.zfunc before compinit).
# _arguments calls an action's function with compadd's options (-J group, -X explanation...)
# before the action's own words: those are taken off and handed to compadd.
_backupctl_values() {
  local -a expl values
  zparseopts -D -E -a expl J: V: X: x: M: F: P: S: p: s: i: I: W: O: A: D: r: R: 1 2 o: q Q n U e l k a f
  values=(\${(f)"$(backupctl completion --values $1 2>/dev/null)"} \${@:2})
  compadd "\${expl[@]}" -a values
}
_backupctl() {
  local curcontext="$curcontext" state line
  local -a global commands
  global=(
${globalSpecs.map((s) => `    ${s}`).join('\n')}
    '--help[show help]'
  )
  commands=(
${described.map((s) => `    ${s}`).join('\n')}
  )
  _arguments -C "\${global[@]}" '1: :->command' '*:: :->args'
  case $state in
    command) _describe -t commands 'backupctl command' commands ;;
    args)
      case $line[1] in
${cases}
      esac ;;
  esac
}
_backupctl "$@"
`;
}

// ---------------------------------------------------------------------------------------
// fish

function fishQuote(text: string): string {
  return `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function fishFlag(flag: Flag, condition: string): string {
  const parts = ['complete -c backupctl'];
  if (condition) parts.push(`-n ${fishQuote(condition)}`);
  parts.push(`-l ${flag.long.slice(2)}`);
  if (flag.short) parts.push(`-s ${flag.short.slice(1)}`);
  if (flag.takesValue) {
    parts.push('-r');
    const choices = choicesOf(flag);
    if (choices) parts.push(`-f -a ${fishQuote(choices.join(' '))}`);
    else if (flag.complete === 'profile') parts.push(`-f -a ${fishQuote(`(${dynamic('profiles')})`)}`);
    else if (flag.complete === 'tag') parts.push(`-f -a ${fishQuote(`(${dynamic('tags')})`)}`);
    else if (flag.complete === 'file' || flag.complete === 'directory') parts.push('-F');
    else parts.push('-f');
  }
  parts.push(`-d ${fishQuote(flag.description)}`);
  return parts.join(' ');
}

function fish(commands: readonly CommandSpec[], globals: readonly OptionSpec[]): string {
  const lines = [
    '# fish completion for backupctl. Save it as ~/.config/fish/completions/backupctl.fish',
    '# (backupctl completion fish > ~/.config/fish/completions/backupctl.fish).',
    'complete -c backupctl -f',
  ];
  for (const flag of globals.map(flagOf)) lines.push(fishFlag(flag, ''));
  for (const command of commands) {
    for (const name of [command.name, ...(command.aliases ?? [])]) {
      lines.push(`complete -c backupctl -n '__fish_use_subcommand' -a ${name} -d ${fishQuote(command.summary)}`);
    }
    const seen = `__fish_seen_subcommand_from ${[command.name, ...(command.aliases ?? [])].join(' ')}`;
    for (const flag of command.options.map(flagOf)) lines.push(fishFlag(flag, seen));
    if (command.arguments?.some((a) => a.complete === 'backup')) {
      lines.push(`complete -c backupctl -n ${fishQuote(seen)} -a ${fishQuote(`latest (${dynamic('ids')})`)}`);
    }
  }
  lines.push(`complete -c backupctl -n '__fish_seen_subcommand_from completion' -a ${fishQuote(SHELLS.join(' '))}`);
  return `${lines.join('\n')}\n`;
}

export function completionScript(shell: Shell, commands: readonly CommandSpec[], globals: readonly OptionSpec[]): string {
  switch (shell) {
    case 'bash':
      return bash(commands, globals);
    case 'zsh':
      return zsh(commands, globals);
    case 'fish':
      return fish(commands, globals);
  }
}
