#!/usr/bin/env bash
# tests/lib/phoenix.sh — the real `phoenix` npm client (with `ws` as its
# transport), pinned, installed once under the build tree, for the tests
# that drive the gateway's WebSocket with tests/tools/phx_client.js.
# tp_install: installs it when missing; exports NODE_PATH; sets TP_CLIENT.
# Needs deploy/local/lib.sh (bk_install_packages, bk_die) and BICKY_BIN.

TP_PHOENIX_VERSION=1.8.16
TP_WS_VERSION=8.18.3

tp_install() {
    local dir
    dir=$(cd "${BICKY_BIN:?}/.." && pwd)/npm-phoenix
    if [[ ! -f $dir/node_modules/phoenix/package.json ||
        $(jq -r .version "$dir/node_modules/phoenix/package.json") != "$TP_PHOENIX_VERSION" ]]; then
        mkdir -p "$dir"
        command -v npm >/dev/null || bk_install_packages npm
        (cd "$dir" && npm install --no-audit --no-fund --silent \
            "phoenix@$TP_PHOENIX_VERSION" "ws@$TP_WS_VERSION" >npm.log 2>&1) ||
            {
                cat "$dir/npm.log"
                bk_die "npm install phoenix@$TP_PHOENIX_VERSION ws@$TP_WS_VERSION failed"
            }
    fi
    export NODE_PATH=$dir/node_modules
    TP_CLIENT=${BICKY_SRC:?}/tests/tools/phx_client.js
}
