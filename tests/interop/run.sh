#!/usr/bin/env bash
# Interop check against an independent peer: tests/interop/peer.py, written
# in Python from PROTOCOL.md alone, with PyNaCl (libsodium) for the crypto.
# Runs both roles, encrypted and plain, against the `mtgnet` binary:
#   peer.py client -> mtgnet serve      (Lisp- and PHP-style requests, big ids)
#   mtgnet call    -> peer.py server    (Lisp-style results)
# Usage: tests/interop/run.sh [path/to/mtgnet]   (default target/debug/mtgnet)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-target/debug/mtgnet}
peer=tests/interop/peer.py
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

wait_for_lines() { # file count
    for _ in $(seq 100); do
        [ -f "$1" ] && [ "$(wc -l < "$1")" -ge "$2" ] && return 0
        sleep 0.05
    done
    echo "interop: no startup line in $1" >&2
    return 1
}

for mode in encrypted plain; do
    flag=(); [ $mode = plain ] && flag=(--plain)
    "$bin" serve --listen 127.0.0.1:0 "${flag[@]}" > "$tmp/serve.out" 2>/dev/null &
    serve=$!
    wait_for_lines "$tmp/serve.out" $([ $mode = plain ] && echo 1 || echo 2)
    addr=$(sed -n 1p "$tmp/serve.out" | cut -d' ' -f2)
    key=$([ $mode = plain ] && echo plain || sed -n 2p "$tmp/serve.out" | cut -d' ' -f2)
    timeout 20 python3 "$peer" client "${addr%:*}" "${addr#*:}" "$key" > /dev/null
    kill -TERM $serve; wait $serve
    echo "interop: python client -> mtgnet serve ($mode): ok"

    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    CONNS=$([ $mode = plain ] && echo 2 || echo 3) timeout 20 python3 "$peer" server "$port" $([ $mode = plain ] && echo plain || echo enc) > "$tmp/py.out" &
    wait_for_lines "$tmp/py.out" 2
    pin=(); [ $mode = encrypted ] && pin=(--server-key "$(sed -n 2p "$tmp/py.out" | cut -d' ' -f2)")
    if [ $mode = encrypted ]; then
        # The Python peer speaks only v1: a v2 call (the default) must fail
        # clearly and not fall back; then --encryption v1 is used.
        set +e
        err=$("$bin" call "127.0.0.1:$port" Test echo 1 "${pin[@]}" --timeout 10 2>&1)
        code=$?
        set -e
        [ $code = 2 ] && [ "$err" = 'error: the server speaks only encryption v1; `--encryption v1` accepts its weaker protection' ]
        pin+=(--encryption v1)
    fi
    out=$("$bin" call "127.0.0.1:$port" Test echo '{"x":[1,2.5,"é"]}' "${flag[@]}" "${pin[@]}" --timeout 10)
    [ "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]) == {"x":[1,2.5,"é"]})' "$out")" = True ]
    set +e
    err=$("$bin" call "127.0.0.1:$port" Test fail "${flag[@]}" "${pin[@]}" --timeout 10 2>&1)
    code=$?
    set -e
    [ $code = 1 ] && [ "$err" = "error 42: boom" ]
    wait
    echo "interop: mtgnet call -> python server ($mode): ok"
done
