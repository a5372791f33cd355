#!/usr/bin/env bash
# install_claude.sh CACHE_DIR — installs the Claude Code CLI that the
# claude-code tests run (pinned: newer versions may change the stream-json
# details the tests rely on) into CACHE_DIR with npm, once, and prints the
# path of the `claude` binary on stdout (npm's own output goes to stderr).
# Idempotent: when CACHE_DIR already holds that version, nothing is
# downloaded. Usage in tests/run:
#   BICKY_CLAUDE=$(tests/lib/install_claude.sh "$HOME/.cache/bicky-claude") && export BICKY_CLAUDE
set -euo pipefail

version=2.1.197
dir=${1:?usage: install_claude.sh CACHE_DIR}
bin="$dir/node_modules/.bin/claude"

installed() {
    [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "^$version "
}

if ! installed; then
    command -v npm >/dev/null || { echo "install_claude.sh: npm not found" >&2; exit 1; }
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error \
        "@anthropic-ai/claude-code@$version" >&2
    installed || { echo "install_claude.sh: $bin is not claude $version" >&2; exit 1; }
fi
printf '%s\n' "$(cd "$(dirname "$bin")" && pwd)/claude"
