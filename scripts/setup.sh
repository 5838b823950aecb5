#!/usr/bin/env bash
# Installs what the harness needs and the machine lacks: redis-server and a PostgreSQL
# server (for throwaway instances), from Debian's packages. Idempotent; fails loudly.
set -euo pipefail

have_pg() { compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null; }
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
have_pg || missing+=(postgresql)

if [ ${#missing[@]} -gt 0 ]; then
  if [ -n "${DATABASE_URL:-}" ] && [ -n "${REDIS_URL:-}" ]; then
    echo "setup: ${missing[*]} missing, but DATABASE_URL and REDIS_URL are set: using those servers."
    exit 0
  fi
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "setup: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]}) or set DATABASE_URL and REDIS_URL" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]} from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v redis-server >/dev/null || { echo "setup: redis-server still missing" >&2; exit 1; }
have_pg || { echo "setup: PostgreSQL's initdb still missing" >&2; exit 1; }
id postgres >/dev/null 2>&1 || { echo "setup: the postgres system user is missing (throwaway Postgres runs as it)" >&2; exit 1; }
