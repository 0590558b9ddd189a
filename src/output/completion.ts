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

type ValuesKind = 'profiles' | 'ids' | 'tags';

/**
 * The global options that say where profiles, ids and tags are: each script finds them on
 * the line being completed (`--opt VALUE` or `--opt=VALUE`, before or after the command)
 * and hands them to `backupctl completion --values` as arguments, never evaluated. Profiles
 * are asked without the line's --profile (the one being completed, or a second one).
 */
const WHERE_OPTIONS = ['--config', '--storage'] as const;
const PROFILE_OPTION = '--profile';

function choicesOf(flag: Flag): readonly string[] | undefined {
  if (flag.choices) return flag.choices;
  return Array.isArray(flag.complete) ? (flag.complete as readonly string[]) : undefined;
}

// ---------------------------------------------------------------------------------------
// bash

/** The bash words that complete a value: the helper with the line's where and named arrays (see _backupctl). */
function bashValues(kind: ValuesKind): string {
  return `backupctl completion --values ${kind} "\${where[@]}"${kind === 'profiles' ? '' : ' "${named[@]}"'} 2>/dev/null`;
}

/** `case "$prev"` arms completing the values of these options (one arm per option). */
function bashValueCase(flags: Flag[]): string {
  const lines: string[] = [];
  for (const flag of flags) {
    if (!flag.takesValue) continue;
    const names = [flag.long, flag.short].filter(Boolean).join('|');
    const choices = choicesOf(flag);
    let action: string;
    if (choices) action = `COMPREPLY=($(compgen -W "${choices.join(' ')}" -- "$cur"))`;
    else if (flag.complete === 'profile') action = `COMPREPLY=($(compgen -W "$(${bashValues('profiles')})" -- "$cur"))`;
    else if (flag.complete === 'tag') action = `COMPREPLY=($(compgen -W "$(${bashValues('tags')})" -- "$cur"))`;
    // As file names: one per line (a name with a space stays one), and `-o filenames` makes
    // bash quote them and end a directory with "/" (compopt fails harmlessly outside completion).
    else if (flag.complete === 'file') action = 'compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -f -- "$cur")';
    else if (flag.complete === 'directory') action = 'compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -d -- "$cur")';
    else action = 'COMPREPLY=()';
    lines.push(`    ${names}) ${action}; return ;;`);
  }
  return lines.join('\n');
}

function bash(commands: readonly CommandSpec[], globals: readonly OptionSpec[]): string {
  const globalFlags = globals.map(flagOf);
  const names = commands.flatMap((c) => [c.name, ...(c.aliases ?? [])]);
  const flagWords = (flags: Flag[]) => flags.flatMap((f) => [f.long, ...(f.short ? [f.short] : [])]).join(' ');
  const perCommand = commands
    .map((c) => `    ${[c.name, ...(c.aliases ?? [])].join('|')}) opts="${flagWords(c.options.map(flagOf))}" ;;`)
    .join('\n');
  // Per command: two commands may define one option differently (create's and rekey's --recipients-file).
  const valueCases = commands
    .map((c) => ({ names: [c.name, ...(c.aliases ?? [])].join('|'), arms: bashValueCase(c.options.map(flagOf)) }))
    .filter((c) => c.arms !== '')
    .map((c) => `    ${c.names})\n      case "$prev" in\n${c.arms.replace(/^/gm, '    ')}\n      esac ;;`)
    .join('\n');
  const valueGlobals = globalFlags.filter((f) => f.takesValue).flatMap((f) => [f.long, ...(f.short ? [f.short] : [])]);
  const backupArgs = commands.filter((c) => c.arguments?.some((a) => a.complete === 'backup')).flatMap((c) => [c.name, ...(c.aliases ?? [])]);
  return `# bash completion for backupctl. Load it with:  source <(backupctl completion bash)
# or save it as /etc/bash_completion.d/backupctl (or ~/.local/share/bash-completion/completions/backupctl).
_backupctl() {
  local cur prev cmd opts i word
  local -a where named
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  # bash splits --opt=value at "=" (COMP_WORDBREAKS): complete the value of --opt.
  if [[ "$cur" == "=" ]]; then
    cur=""
  elif [[ "$prev" == "=" ]]; then
    prev="\${COMP_WORDS[COMP_CWORD-2]}"
  fi
  # The command is the first word that is neither an option nor the value of a global
  # option (--profile NAME, or --profile = NAME as bash splits --profile=NAME); where and
  # named collect the line's ${WHERE_OPTIONS.join(', ')} and ${PROFILE_OPTION} for the values helper.
  cmd=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    case "$word" in
      ${valueGlobals.join('|')})
        [[ "\${COMP_WORDS[i+1]}" == "=" ]] && ((i++))
        ((++i < COMP_CWORD)) || break
        case "$word" in
          ${WHERE_OPTIONS.join('|')}) where+=("$word" "\${COMP_WORDS[i]}") ;;
          ${PROFILE_OPTION}) named=("$word" "\${COMP_WORDS[i]}") ;;
        esac ;;
      ${WHERE_OPTIONS.map((o) => `${o}=*`).join('|')}) where+=("$word") ;;
      ${PROFILE_OPTION}=*) named=("$word") ;;
      -*) ;;
      *) [[ -z "$cmd" ]] && cmd="$word" ;;
    esac
  done
  case "$cmd" in
${valueCases}
  esac
  case "$prev" in
${bashValueCase(globalFlags)}
  esac
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
    ${backupArgs.join('|')}) COMPREPLY=($(compgen -W "latest $(${bashValues('ids')})" -- "$cur")) ;;
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
# Values are asked with the line's ${WHERE_OPTIONS.join(', ')} and (but for profiles)
# ${PROFILE_OPTION}, as _backupctl found them.
_backupctl_values() {
  local -a expl values scope
  zparseopts -D -E -a expl J: V: X: x: M: F: P: S: p: s: i: I: W: O: A: D: r: R: 1 2 o: q Q n U e l k a f
  scope=($_backupctl_where)
  [[ $1 == profiles ]] || scope+=($_backupctl_named)
  values=(\${(f)"$(backupctl completion --values $1 "\${scope[@]}" 2>/dev/null)"} \${@:2})
  compadd "\${expl[@]}" -a values
}
_backupctl() {
  local curcontext="$curcontext" state line i
  local -a global commands _backupctl_where _backupctl_named
  # Before _arguments narrows $words to the command's: the line's ${WHERE_OPTIONS.join(', ')} and
  # ${PROFILE_OPTION}, each as one word --opt=value, unquoted (never evaluated), for _backupctl_values.
  for ((i = 2; i < CURRENT; i++)); do
    case $words[i] in
      ${WHERE_OPTIONS.join('|')}) (( i + 1 < CURRENT )) && _backupctl_where+=("$words[i]=\${(Q)words[i+1]}"); (( i++ )) ;;
      ${PROFILE_OPTION}) (( i + 1 < CURRENT )) && _backupctl_named=("$words[i]=\${(Q)words[i+1]}"); (( i++ )) ;;
      ${WHERE_OPTIONS.map((o) => `${o}=*`).join('|')}) _backupctl_where+=("\${(Q)words[i]}") ;;
      ${PROFILE_OPTION}=*) _backupctl_named=("\${(Q)words[i]}") ;;
    esac
  done
  global=(
${globalSpecs.map((s) => `    ${s}`).join('\n')}
    '--help[show help]'
  )
  commands=(
${described.map((s) => `    ${s}`).join('\n')}
  )
  # -A '-*': options after the command are the command's _arguments' (else a global one
  # there, e.g. show --profile P, is taken here and the command's words are lost).
  _arguments -C -A '-*' "\${global[@]}" '1: :->command' '*:: :->args'
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
    else if (flag.complete === 'profile') parts.push(`-f -a ${fishQuote('(__backupctl_values profiles)')}`);
    else if (flag.complete === 'tag') parts.push(`-f -a ${fishQuote('(__backupctl_values tags)')}`);
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
    `# Asks backupctl for the values of $argv[1] (profiles, ids, tags) with the line's ${WHERE_OPTIONS.join(', ')}`,
    `# and, but for profiles, ${PROFILE_OPTION}: handed over as arguments, never evaluated.`,
    'function __backupctl_values',
    '    set -l words (commandline -opc)',
    '    set -l where',
    '    set -l named',
    '    set -l i 2',
    '    while test $i -le (count $words)',
    '        switch $words[$i]',
    `            case ${WHERE_OPTIONS.join(' ')}`,
    '                set i (math $i + 1)',
    '                test $i -le (count $words); and set -a where $words[(math $i - 1)] $words[$i]',
    `            case ${PROFILE_OPTION}`,
    '                set i (math $i + 1)',
    '                test $i -le (count $words); and set named $words[(math $i - 1)] $words[$i]',
    `            case ${WHERE_OPTIONS.map((o) => `'${o}=*'`).join(' ')}`,
    '                set -a where $words[$i]',
    `            case '${PROFILE_OPTION}=*'`,
    '                set named $words[$i]',
    '        end',
    '        set i (math $i + 1)',
    '    end',
    '    test "$argv[1]" = profiles; or set -a where $named',
    '    backupctl completion --values $argv[1] $where 2>/dev/null',
    'end',
  ];
  // __fish_use_subcommand takes the value of `--profile billing` for the command.
  const valueGlobals = globals.map(flagOf).filter((f) => f.takesValue).flatMap((f) => [f.long, ...(f.short ? [f.short] : [])]);
  lines.push(
    '# True while the line has no command yet: words that are options, or values of global options, only.',
    'function __backupctl_needs_command',
    '    set -l words (commandline -opc)',
    '    set -l i 2',
    '    while test $i -le (count $words)',
    '        switch $words[$i]',
    `            case ${valueGlobals.join(' ')}`,
    '                set i (math $i + 1)',
    "            case '-*'",
    "            case '*'",
    '                return 1',
    '        end',
    '        set i (math $i + 1)',
    '    end',
    '    return 0',
    'end',
  );
  for (const flag of globals.map(flagOf)) lines.push(fishFlag(flag, ''));
  for (const command of commands) {
    for (const name of [command.name, ...(command.aliases ?? [])]) {
      lines.push(`complete -c backupctl -n '__backupctl_needs_command' -a ${name} -d ${fishQuote(command.summary)}`);
    }
    const seen = `__fish_seen_subcommand_from ${[command.name, ...(command.aliases ?? [])].join(' ')}`;
    for (const flag of command.options.map(flagOf)) lines.push(fishFlag(flag, seen));
    if (command.arguments?.some((a) => a.complete === 'backup')) {
      // -k: in the helper's order (newest first), after "latest"; fish would sort them.
      lines.push(`complete -c backupctl -n ${fishQuote(seen)} -k -a ${fishQuote('latest (__backupctl_values ids)')}`);
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
