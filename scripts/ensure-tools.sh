#!/usr/bin/env bash
# Makes sure the programs the tests (and features) use besides PostgreSQL are installed:
# zstd (the default compression stage), age (interoperability tests of encrypted backups),
# OpenSSH's sshd (the SFTP storage tests), jq (the README's shell recipes), zsh and fish
# (completion scripts). On Debian/Ubuntu it installs the missing ones with apt-get (as
# root, or with sudo); elsewhere it says what to install. Quiet when everything is there.
set -euo pipefail

declare -A package=([zstd]=zstd [age]=age [sshd]=openssh-server [jq]=jq [zsh]=zsh [fish]=fish)
have() { command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ]; }

missing=()
for program in "${!package[@]}"; do
  have "$program" || missing+=("${package[$program]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "missing: ${missing[*]}" >&2
if command -v apt-get >/dev/null; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then SUDO="sudo"; else
      echo "run as root, or install them: apt-get install ${missing[*]}" >&2
      exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "install: ${missing[*]}" >&2
  exit 1
fi
