#!/usr/bin/env bash
# Installs what the harness needs and the machine lacks, from Debian's packages:
# redis-server and a PostgreSQL server (for throwaway instances; not needed when
# DATABASE_URL and REDIS_URL are set, nor for runs (STOPFLOW_SETUP_FOR=runs, as the
# Makefile's run targets set it) when a Docker daemon answers, since chaos then starts
# them as containers), and OpenSSL's headers for the standard Toxiproxy client the tests
# drive. Idempotent; fails loudly.
set -euo pipefail

# Whether runs will take their servers from containers: asked for runs, not told to use
# local servers, and a daemon answers a ping (as chaos --infra auto decides).
containers_for_runs() {
  [ "${STOPFLOW_SETUP_FOR:-}" = runs ] || return 1
  case "${STOPFLOW_INFRA:-auto}" in local|env) return 1 ;; esac
  command -v curl >/dev/null || return 1
  local host="${DOCKER_HOST:-unix:///var/run/docker.sock}"
  # Asked as whoever runs chaos: under sudo, root reaches a socket the caller may not.
  local as=()
  if [ "$(id -u)" -eq 0 ] && [ -n "${SUDO_USER:-}" ] && command -v runuser >/dev/null; then
    as=(runuser -u "$SUDO_USER" --)
  fi
  case "$host" in
    unix://*) "${as[@]}" curl -fsS --max-time 2 --unix-socket "${host#unix://}" http://docker/_ping >/dev/null 2>&1 ;;
    tcp://*) "${as[@]}" curl -fsS --max-time 2 "http://${host#tcp://}/_ping" >/dev/null 2>&1 ;;
    *) return 1 ;;
  esac
}

have_pg() { compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null; }
have_ssl() { command -v pkg-config >/dev/null && pkg-config --exists openssl; }

need_servers=yes
if [ -n "${DATABASE_URL:-}" ] && [ -n "${REDIS_URL:-}" ]; then
  need_servers=no
elif containers_for_runs; then
  echo "setup: a Docker daemon answers: runs start Postgres and Redis as containers"
  need_servers=no
fi

missing=()
if [ "$need_servers" = yes ]; then
  command -v redis-server >/dev/null || missing+=(redis-server)
  have_pg || missing+=(postgresql)
fi
# Only the tests build the Toxiproxy client that needs them.
need_ssl=yes
[ "${STOPFLOW_SETUP_FOR:-}" = runs ] && need_ssl=no
[ "$need_ssl" = no ] || have_ssl || missing+=(pkg-config libssl-dev)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "setup: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]}), or set DATABASE_URL and REDIS_URL for the servers" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]} from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$need_servers" = yes ]; then
  command -v redis-server >/dev/null || { echo "setup: redis-server still missing" >&2; exit 1; }
  have_pg || { echo "setup: PostgreSQL's initdb still missing" >&2; exit 1; }
  id postgres >/dev/null 2>&1 || { echo "setup: the postgres system user is missing (throwaway Postgres runs as it)" >&2; exit 1; }
fi
[ "$need_ssl" = no ] || have_ssl || { echo "setup: OpenSSL's headers (libssl-dev) still missing" >&2; exit 1; }
