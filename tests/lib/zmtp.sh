# shellcheck shell=bash
# zmtp.sh — hostile ZeroMQ peers written in bash (/dev/tcp), for robustness
# tests. No zmq library is involved: the bytes are written by hand.
#   t_tcp_random PORT BYTES [SEED]  pseudo-random bytes on a fresh TCP
#                                 connection (a broken ZMTP greeting)
#   t_tcp_send PORT FORMAT        raw bytes (a printf format) on a fresh TCP
#                                 connection
#   t_zmtp_send PORT FRAME...     ZMTP 3.0 NULL handshake as a DEALER, then one
#                                 message made of the given frames; each FRAME
#                                 is a printf format (\xNN escapes), <= 255 bytes,
#                                 @random:N[:SEED] for N pseudo-random bytes, or
#                                 @raw:FORMAT for bytes written as they are
#                                 (frame header included: to forge bad headers)
# "Random" bytes come from a seeded generator, so a failure can be replayed.

# s_prng BYTES SEED: BYTES pseudo-random bytes on stdout, the same for a seed.
s_prng() {
    python3 -c 'import random, sys
r = random.Random(int(sys.argv[2]))
sys.stdout.buffer.write(bytes(r.getrandbits(8) for _ in range(int(sys.argv[1]))))' "$1" "$2"
}

# Opens fd T_FD on 127.0.0.1:$1; quiet when refused (returns 1).
s_connect() {
    { exec {T_FD}<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null
}

t_tcp_random() {
    local port=$1 bytes=$2 seed=${3:-1}
    s_connect "$port" || return 1
    s_prng "$bytes" "$seed" 1>&"$T_FD" 2>/dev/null || true
    sleep 0.2
    exec {T_FD}>&-
    return 0
}

t_tcp_send() {
    s_connect "$1" || return 1
    # shellcheck disable=SC2059
    printf -- "$2" 1>&"$T_FD" 2>/dev/null || true
    sleep 0.2
    exec {T_FD}>&-
    return 0
}

# Writes one short ZMTP frame (flags byte, size byte, body) to stdout.
s_zmtp_frame() {
    local flags=$1 spec=$2 tmp len
    tmp=$(mktemp)
    if [[ $spec == @raw:* ]]; then
        # shellcheck disable=SC2059
        printf -- "${spec#@raw:}"
        rm -f "$tmp"
        return 0
    elif [[ $spec == @random:* ]]; then
        spec=${spec#@random:}
        s_prng "${spec%%:*}" "$([[ $spec == *:* ]] && echo "${spec#*:}" || echo 1)" >"$tmp"
    else
        # shellcheck disable=SC2059
        printf -- "$spec" >"$tmp"
    fi
    len=$(stat -c %s "$tmp")
    # shellcheck disable=SC2059 # the format is built from two hex numbers
    printf "\\x$(printf %02x "$flags")\\x$(printf %02x "$len")"
    cat "$tmp"
    rm -f "$tmp"
}

t_zmtp_send() {
    local port=$1 i n
    shift
    n=$#
    s_connect "$port" || return 1
    {
        # Greeting: signature, version 3.0, mechanism NULL, as-server 0, filler.
        printf '\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f\x03\x00NULL'
        head -c 48 /dev/zero
        # READY command with Socket-Type=DEALER.
        printf '\x04\x1c\x05READY\x0bSocket-Type\x00\x00\x00\x06DEALER'
        for ((i = 1; i <= n; i++)); do
            s_zmtp_frame $((i < n ? 1 : 0)) "${!i}"
        done
    } 1>&"$T_FD" 2>/dev/null || true
    sleep 0.15
    exec {T_FD}>&-
    return 0
}

# Hand-made msgpack, as printf formats for t_zmtp_send (ASCII strings only).
# t_mp_str S: a str (fixstr or str8, S shorter than 256 bytes).
t_mp_str() {
    local s=${1//\\/\\\\}
    s=${s//%/%%}
    if ((${#1} < 32)); then
        printf '\\x%02x%s' $((0xa0 + ${#1})) "$s"
    else
        printf '\\xd9\\x%02x%s' "${#1}" "$s"
    fi
}

# t_mp_bin16: a bin 8 of 16 random bytes (a random UUID-sized id).
t_mp_bin16() {
    printf '\\xc4\\x10'
    od -An -v -tx1 -N16 /dev/urandom | tr -d ' \n' | sed 's/../\\x&/g'
}

# t_mp_envelope TYPE PAYLOAD [CONV TEAM]: a complete proto envelope (v 1,
# req_id 7, ring_epoch 0) of message type TYPE (a number) around the payload
# map PAYLOAD (already msgpack); CONV and TEAM are msgpack values (nil \xc0
# when omitted).
t_mp_envelope() {
    local type=$1 payload=$2 conv=${3:-'\xc0'} team=${4:-'\xc0'}
    printf '\\x87%s\\x01%s\\x%02x%s\\x07%s%s%s%s%s\\x00%s%s' \
        "$(t_mp_str v)" "$(t_mp_str type)" "$type" "$(t_mp_str req_id)" \
        "$(t_mp_str conv_id)" "$conv" "$(t_mp_str team_id)" "$team" \
        "$(t_mp_str ring_epoch)" "$(t_mp_str payload)" "$payload"
}

# t_mp_api_req OP BODY [CONV TEAM]: a PROTO_API_REQ envelope.
t_mp_api_req() {
    t_mp_envelope 10 "\\x82$(t_mp_str op)$(t_mp_str "$1")$(t_mp_str body)$(t_mp_str "$2")" \
        "${3:-}" "${4:-}"
}
