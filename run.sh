#!/usr/bin/env bash
# Set up this checkout on a fresh machine and run it.
#   ./run.sh demo   open the console on the bundled demo project
#   ./run.sh test   run the test suite
set -euo pipefail
cd "$(dirname "$0")"

need_redis() {
  if ! command -v redis-server >/dev/null 2>&1 && ! command -v valkey-server >/dev/null 2>&1; then
    echo "installing redis-server (apt-get)..." >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq redis-server >/dev/null
  fi
}

need_package() {
  if ! python3 -c "import lark_core, lark_tui, pytest_asyncio" >/dev/null 2>&1 \
     || ! command -v lark-core >/dev/null 2>&1; then
    echo "installing lark and its dev tools (pip install -e '.[dev]')..." >&2
    python3 -m pip install -q -e '.[dev]'
  fi
}

case "${1:-}" in
  demo)
    need_redis; need_package
    shift
    exec lark-tui --config lark.config.yaml "$@"
    ;;
  test)
    need_redis; need_package
    shift
    exec python3 -m pytest -q "$@"
    ;;
  *)
    echo "usage: ./run.sh demo | test [pytest args]" >&2
    exit 2
    ;;
esac
