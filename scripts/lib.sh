# Shared set-up for scripts/start and scripts/test: installs and starts what is missing.
# Sourced, not run. Everything here is idempotent.

EVENTRA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EVENTRA_DATA_DIR="${EVENTRA_DATA_DIR:-$EVENTRA_ROOT/.data}"
export EVENTRA_DATA_DIR
PG_HOST=127.0.0.1
PG_PORT=5432
NATS_PORT=4222

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1
  fi
}

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    log "apt-get update"
    as_root apt-get update -qq
    apt_updated=1
  fi
  log "installing $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_for_port() {
  local host=$1 port=$2 what=$3
  for _ in $(seq 1 60); do
    port_open "$host" "$port" && return 0
    sleep 0.5
  done
  echo "$what did not come up on $host:$port" >&2
  return 1
}

ensure_rust() {
  if ! command -v cargo >/dev/null; then
    echo "cargo is missing: install Rust (https://rustup.rs) and run this again" >&2
    exit 1
  fi
}

# cargo-deny checks the dependencies' licences, sources and duplicates (deny.toml); built
# from crates.io once (about three minutes on two cores), then kept in ~/.cargo/bin.
ensure_cargo_deny() {
  if ! cargo deny --version >/dev/null 2>&1; then
    log "installing cargo-deny"
    cargo install --locked cargo-deny
  fi
}

ensure_postgres() {
  if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    apt_install postgresql postgresql-client
  fi
  if ! port_open "$PG_HOST" "$PG_PORT"; then
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    log "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
    wait_for_port "$PG_HOST" "$PG_PORT" PostgreSQL
  fi
  # The services connect over TCP as `root` without a password (local development only).
  if ! psql "postgres://root@$PG_HOST:$PG_PORT/postgres" -Atqc 'SELECT 1' >/dev/null 2>&1; then
    log "creating the PostgreSQL role root with local trust authentication"
    as_root su postgres -c "psql -qc \"DO \\\$\\\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'root') THEN CREATE ROLE root SUPERUSER LOGIN; END IF; END \\\$\\\$;\"" >/dev/null
    local hba
    hba=$(as_root su postgres -c "psql -Atqc 'SHOW hba_file'")
    if ! as_root grep -q '^host all root 127.0.0.1/32 trust' "$hba"; then
      as_root sed -i '1i host all root 127.0.0.1/32 trust\nhost all root ::1/128 trust' "$hba"
      as_root su postgres -c "psql -qc 'SELECT pg_reload_conf()'" >/dev/null
    fi
    psql "postgres://root@$PG_HOST:$PG_PORT/postgres" -Atqc 'SELECT 1' >/dev/null
  fi
}

ensure_nats() {
  if ! command -v nats-server >/dev/null; then
    apt_install nats-server
  fi
  if ! port_open 127.0.0.1 "$NATS_PORT"; then
    mkdir -p "$EVENTRA_DATA_DIR/nats"
    log "starting nats-server with JetStream (data in $EVENTRA_DATA_DIR/nats)"
    nohup nats-server -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$EVENTRA_DATA_DIR/nats" \
      >"$EVENTRA_DATA_DIR/nats-server.log" 2>&1 &
    wait_for_port 127.0.0.1 "$NATS_PORT" nats-server
  fi
}

REDIS_PORT=6379

ensure_redis() {
  if ! command -v redis-server >/dev/null; then
    apt_install redis-server
  fi
  if ! port_open 127.0.0.1 "$REDIS_PORT"; then
    mkdir -p "$EVENTRA_DATA_DIR/redis"
    log "starting redis-server (shared rate-limit counters)"
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$EVENTRA_DATA_DIR/redis" \
      --daemonize yes --logfile "$EVENTRA_DATA_DIR/redis-server.log" >/dev/null
    wait_for_port 127.0.0.1 "$REDIS_PORT" redis-server
  fi
}

# The validators of the deployment files: promtool (Debian's prometheus package) and
# check-jsonschema (PyPI, in a virtualenv under ~/.cache/eventra).
ensure_validators() {
  # The tests make their TLS certificates with openssl.
  command -v openssl >/dev/null || apt_install openssl
  if ! command -v promtool >/dev/null; then
    apt_install prometheus
  fi
  local venv="${XDG_CACHE_HOME:-$HOME/.cache}/eventra/venv"
  if [ ! -x "$venv/bin/check-jsonschema" ]; then
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
      apt_install python3-venv
      python3 -m venv "$venv"
    fi
    log "installing check-jsonschema"
    "$venv/bin/pip" install -q check-jsonschema
  fi
  export CHECK_JSONSCHEMA="$venv/bin/check-jsonschema"
  # A JWT library of another ecosystem verifies our tokens with the published JWKS.
  if ! "$venv/bin/python" -c "import jwt, cryptography" >/dev/null 2>&1; then
    log "installing PyJWT"
    "$venv/bin/pip" install -q "PyJWT[crypto]==2.10.1"
  fi
  export EVENTRA_PYTHON="$venv/bin/python"
  # The AsyncAPI 3.0 JSON Schema, from the AsyncAPI project's npm package.
  local npm_dir="${XDG_CACHE_HOME:-$HOME/.cache}/eventra/npm"
  local specs="$npm_dir/node_modules/@asyncapi/specs/schemas/3.0.0-without-\$id.json"
  if [ ! -f "$specs" ]; then
    command -v npm >/dev/null || apt_install nodejs npm
    mkdir -p "$npm_dir"
    log "installing @asyncapi/specs"
    npm install --prefix "$npm_dir" --silent --no-audit --no-fund "@asyncapi/specs@6.11.1" >/dev/null
  fi
  export ASYNCAPI_SCHEMA="$specs"
}

# Schemathesis (generated requests from the OpenAPI documents), pinned, in the same venv.
ensure_schemathesis() {
  local venv="${XDG_CACHE_HOME:-$HOME/.cache}/eventra/venv"
  local version="4.32.5"
  if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$version"; then
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
      apt_install python3-venv
      python3 -m venv "$venv"
    fi
    log "installing schemathesis $version"
    "$venv/bin/pip" install -q "schemathesis==$version"
  fi
  export SCHEMATHESIS="$venv/bin/st"
}

# One compiled target directory shared by every checkout on this machine, so a fresh clone
# (CI) reuses what an earlier build compiled.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/eventra/target}"
