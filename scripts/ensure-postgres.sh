#!/usr/bin/env bash
# Makes sure the PostgreSQL server and client programs the tests, the demo and the
# benchmarks start are installed (initdb, pg_ctl, pg_dump, pg_restore, psql, pgbench).
# On Debian/Ubuntu it installs them with apt-get when they are missing (as root, or with
# sudo); elsewhere it says what to install. Quiet when everything is there.
set -euo pipefail

have() { compgen -G "/usr/lib/postgresql/*/bin/$1" >/dev/null || command -v "$1" >/dev/null; }

missing=()
for program in initdb pg_ctl pg_dump pg_restore psql pgbench; do
  have "$program" || missing+=("$program")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "PostgreSQL programs missing: ${missing[*]}" >&2
if command -v apt-get >/dev/null; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then SUDO="sudo"; else
      echo "run as root, or install them: apt-get install postgresql postgresql-client postgresql-contrib" >&2
      exit 1
    fi
  fi
  echo "installing postgresql, postgresql-client and postgresql-contrib with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq postgresql postgresql-client postgresql-contrib >/dev/null
  # The package starts a cluster of its own on 5432; ours run in temp dirs on free ports.
  if command -v pg_lsclusters >/dev/null; then
    pg_lsclusters -h 2>/dev/null | awk '$4 == "online" {print $1, $2}' | while read -r version name; do
      $SUDO pg_ctlcluster "$version" "$name" stop 2>/dev/null || true
    done
  fi
else
  echo "install the PostgreSQL server and client (e.g. brew install postgresql@17, dnf install postgresql-server postgresql-contrib)" >&2
  exit 1
fi
