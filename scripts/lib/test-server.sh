# Shared by the scripts that drive a real `mosaic serve` (api-fuzz,
# compat-clients): the tools directory under the build cache, a Python
# virtual environment with the packages asked for, a server of the
# script's own on a random loopback port, and a tenant with a token.
# Source it; it defines functions only.

# Where pip and npm packages of the scripts live (under the build cache, so
# a second run installs nothing).
mosaic_tools_dir() {
  local dir="${MOSAIC_TOOLS_DIR:-${CARGO_TARGET_DIR:-${HOME:-/tmp}/.cache/mosaic-target}/tools}"
  mkdir -p "$dir"
  echo "$dir"
}

# ensure_venv PACKAGE... : a venv with these PyPI packages; prints its python.
ensure_venv() {
  local venv
  venv="$(mosaic_tools_dir)/venv"
  if [ ! -x "$venv/bin/python" ]; then
    if ! python3 -m venv "$venv" >&2; then
      # Debian's python3 keeps venv in a package of its own.
      echo "installing python3-venv (Debian)" >&2
      rm -rf "$venv"
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv "$venv" >&2
    fi
  fi
  local missing=()
  for pkg in "$@"; do
    "$venv/bin/python" -m pip show -q "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]} (PyPI) into $venv" >&2
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "${missing[@]}" >&2
  fi
  echo "$venv/bin/python"
}

# The mosaic binary of this build (built when missing).
mosaic_bin() {
  local target="${CARGO_TARGET_DIR:-target}"
  if [ ! -x "$target/debug/mosaic" ] || [ -n "${MOSAIC_REBUILD:-}" ]; then
    cargo build -q -p mosaic >&2
  fi
  echo "$target/debug/mosaic"
}

# start_server DATA_DIR [serve arguments...]: starts `mosaic serve` on a
# random port, waits for it, sets MOSAIC_URL and MOSAIC_PID.
start_server() {
  local data=$1
  shift
  local bin
  bin="$(mosaic_bin)"
  mkdir -p "$data"
  rm -f "$data/instance.json"
  RUST_LOG="${RUST_LOG:-warn}" "$bin" serve --data-dir "$data" --listen 127.0.0.1:0 "$@" \
    >"$data/server.log" 2>&1 &
  MOSAIC_PID=$!
  for _ in $(seq 1 300); do
    if [ -s "$data/instance.json" ] && grep -q "\"pid\":$MOSAIC_PID" "$data/instance.json"; then
      MOSAIC_URL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$data/instance.json")
      export MOSAIC_URL MOSAIC_PID
      return 0
    fi
    if ! kill -0 "$MOSAIC_PID" 2>/dev/null; then
      cat "$data/server.log" >&2
      echo "mosaic serve exited" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "mosaic serve did not start within 30 s" >&2
  return 1
}

stop_server() {
  if [ -n "${MOSAIC_PID:-}" ] && kill -0 "$MOSAIC_PID" 2>/dev/null; then
    kill "$MOSAIC_PID" 2>/dev/null || true
    wait "$MOSAIC_PID" 2>/dev/null || true
  fi
}

# create_tenant DATA_DIR SUBDOMAIN: creates a tenant; prints its admin's token.
create_tenant() {
  local data=$1 sub=$2
  "$(mosaic_bin)" tenant create --data-dir "$data" --name "$sub" --subdomain "$sub" \
    --admin-username "admin@$sub.test" --admin-password 'correct-horse-battery' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
