#!/usr/bin/env bash
# tests/lib/puppeteer.sh — headless Chromium for the console test: Debian's
# `chromium` package (installed by tests/run) driven by `puppeteer-core`
# (pinned; never `puppeteer`, which downloads a browser of its own), installed
# once under the build tree. tpp_install: installs what is missing, exports
# NODE_PATH; sets TPP_CHROMIUM. Needs deploy/local/lib.sh and BICKY_BIN.

TPP_PUPPETEER_VERSION=24.43.1

tpp_install() {
    local dir
    dir=$(cd "${BICKY_BIN:?}/.." && pwd)/npm-puppeteer
    command -v chromium >/dev/null || bk_install_packages chromium
    TPP_CHROMIUM=$(command -v chromium) || bk_die "chromium is not installed"
    if [[ ! -f $dir/node_modules/puppeteer-core/package.json ||
        $(jq -r .version "$dir/node_modules/puppeteer-core/package.json") != "$TPP_PUPPETEER_VERSION" ]]; then
        mkdir -p "$dir"
        command -v npm >/dev/null || bk_install_packages npm
        (cd "$dir" && PUPPETEER_SKIP_DOWNLOAD=1 npm install --no-audit --no-fund --silent \
            "puppeteer-core@$TPP_PUPPETEER_VERSION" >npm.log 2>&1) ||
            {
                cat "$dir/npm.log"
                bk_die "npm install puppeteer-core@$TPP_PUPPETEER_VERSION failed"
            }
    fi
    export NODE_PATH=$dir/node_modules
}
