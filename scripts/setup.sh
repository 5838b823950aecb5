#!/usr/bin/env bash
# Installs what the harness needs and the machine lacks, from Debian's packages:
# redis-server and a PostgreSQL server (for throwaway instances; not needed when
# DATABASE_URL and REDIS_URL are set), and OpenSSL's headers for the standard Toxiproxy
# client the tests drive. Idempotent; fails loudly.
set -euo pipefail

have_pg() { compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null; }
have_ssl() { command -v pkg-config >/dev/null && pkg-config --exists openssl; }

missing=()
if [ -z "${DATABASE_URL:-}" ] || [ -z "${REDIS_URL:-}" ]; then
  command -v redis-server >/dev/null || missing+=(redis-server)
  have_pg || missing+=(postgresql)
fi
have_ssl || missing+=(pkg-config libssl-dev)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "setup: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]}), or set DATABASE_URL and REDIS_URL for the servers" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]} from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ -z "${DATABASE_URL:-}" ] || [ -z "${REDIS_URL:-}" ]; then
  command -v redis-server >/dev/null || { echo "setup: redis-server still missing" >&2; exit 1; }
  have_pg || { echo "setup: PostgreSQL's initdb still missing" >&2; exit 1; }
  id postgres >/dev/null 2>&1 || { echo "setup: the postgres system user is missing (throwaway Postgres runs as it)" >&2; exit 1; }
fi
have_ssl || { echo "setup: OpenSSL's headers (libssl-dev) still missing" >&2; exit 1; }
