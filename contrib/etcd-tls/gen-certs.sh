#!/usr/bin/env bash
# Make the TLS material of a unitctl etcd cluster with openssl:
#
#   ca.pem      ca-key.pem       a private CA (kept and reused once made)
#   server.pem  server-key.pem   etcd server + peer certificate (serverAuth and
#                                clientAuth, since members are TLS clients of
#                                each other), with the given subjectAltNames
#   client.pem  client-key.pem   client certificate for unitctl-agent / unitctl
#                                / etcdctl (--client-cert-auth)
#
# usage: gen-certs.sh [-f] [-d DAYS] [-n CLIENT_CN] OUTDIR SAN [SAN...]
#
#   SAN      IP:10.0.0.1, DNS:core-01, or a bare value (an IP address if it
#            looks like one, else a DNS name). IP:127.0.0.1 and DNS:localhost
#            are always added.
#   -f       remake the server and client certificates (the CA is kept)
#   -d DAYS  validity of the new certificates (default 3650)
#   -n CN    common name of the client certificate (default unitctl)
#
# Idempotent: an existing CA is reused, the server certificate is remade only
# when the requested SAN list changed (it is recorded in OUTDIR/server.sans),
# the client certificate only when missing. Files are replaced atomically, keys
# are mode 0600, concurrent runs (e.g. `vagrant up --parallel`) are serialised
# with flock when available. Arguments are never evaluated by a shell; SANs are
# checked against a strict character set before they reach openssl's config.
set -euo pipefail

prog=${0##*/}
die() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 1; }
log() { printf '%s: %s\n' "$prog" "$*" >&2; }
usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0" >&2; exit "${1:-2}"; }

force=0
days=3650
client_cn=unitctl
while getopts ':fd:n:h' opt; do
    case $opt in
        f) force=1 ;;
        d) days=$OPTARG ;;
        n) client_cn=$OPTARG ;;
        h) usage 0 ;;
        :) die "option -$OPTARG needs a value" ;;
        *) die "unknown option -$OPTARG (see -h)" ;;
    esac
done
shift $((OPTIND - 1))
[[ $# -ge 2 ]] || usage 2
outdir=$1
shift

[[ $days =~ ^[1-9][0-9]{0,4}$ ]] || die "bad -d DAYS: $days"
[[ $client_cn =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]] || die "bad -n CLIENT_CN: $client_cn"
command -v openssl >/dev/null || die "openssl not found"

# ---------------------------------------------------------------- SAN list
is_ip() {
    [[ $1 =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || [[ $1 =~ ^[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*$ ]]
}
sans=("IP:127.0.0.1" "DNS:localhost")
for arg in "$@"; do
    case $arg in
        IP:* | DNS:*) san=$arg ;;
        *) if is_ip "$arg"; then san="IP:$arg"; else san="DNS:$arg"; fi ;;
    esac
    value=${san#*:}
    case $san in
        IP:*) is_ip "$value" || die "not an IP address: $arg" ;;
        DNS:*) [[ $value =~ ^(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$ ]] ||
            die "not a DNS name: $arg" ;;
    esac
    for have in "${sans[@]}"; do
        [[ $have == "$san" ]] && continue 2
    done
    sans+=("$san")
done
san_line=$(IFS=,; printf '%s' "${sans[*]}")

# ---------------------------------------------------------------- helpers
mkdir -p -- "$outdir"
outdir=$(cd -- "$outdir" && pwd -P)
tmp=$(mktemp -d "$outdir/.gen-certs.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT

if command -v flock >/dev/null; then
    exec 9>"$outdir/.lock"
    flock -w 300 9 || die "could not lock $outdir/.lock"
fi

newkey() {  # newkey FILE: an EC P-256 key (PKCS#8), mode 0600
    (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
        -out "$1" 2>/dev/null)
}

serial() { printf '0x%s' "$(openssl rand -hex 16)"; }

sign() {  # sign NAME CN EXTFILE: make tmp/NAME{-key,}.pem signed by the CA
    local name=$1 cn=$2 ext=$3
    newkey "$tmp/$name-key.pem"
    openssl req -new -key "$tmp/$name-key.pem" -subj "/O=unitctl/CN=$cn" \
        -out "$tmp/$name.csr"
    openssl x509 -req -in "$tmp/$name.csr" -CA "$outdir/ca.pem" -CAkey "$outdir/ca-key.pem" \
        -set_serial "$(serial)" -days "$days" -sha256 -extfile "$ext" \
        -out "$tmp/$name.pem" 2>/dev/null
    openssl verify -CAfile "$outdir/ca.pem" "$tmp/$name.pem" >/dev/null
    chmod 0644 "$tmp/$name.pem"
    mv -f -- "$tmp/$name-key.pem" "$outdir/$name-key.pem"
    mv -f -- "$tmp/$name.pem" "$outdir/$name.pem"
}

# ---------------------------------------------------------------- CA
if [[ ! -s $outdir/ca.pem || ! -s $outdir/ca-key.pem ]]; then
    log "making CA in $outdir"
    newkey "$tmp/ca-key.pem"
    openssl req -x509 -new -key "$tmp/ca-key.pem" -sha256 -days "$days" \
        -subj "/O=unitctl/CN=unitctl etcd CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$tmp/ca.pem"
    chmod 0644 "$tmp/ca.pem"
    mv -f -- "$tmp/ca-key.pem" "$outdir/ca-key.pem"
    mv -f -- "$tmp/ca.pem" "$outdir/ca.pem"
    force=1  # leaves signed by an older CA would not verify any more
fi

# ---------------------------------------------------------------- server
old_sans=""
[[ -f $outdir/server.sans ]] && old_sans=$(<"$outdir/server.sans")
if [[ $force == 1 || ! -s $outdir/server.pem || ! -s $outdir/server-key.pem ||
      $old_sans != "$san_line" ]]; then
    log "making server certificate for $san_line"
    cat >"$tmp/server.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=$san_line
EXT
    sign server etcd "$tmp/server.ext"
    printf '%s\n' "$san_line" >"$tmp/server.sans"
    mv -f -- "$tmp/server.sans" "$outdir/server.sans"
else
    log "server certificate up to date ($san_line)"
fi

# ---------------------------------------------------------------- client
if [[ $force == 1 || ! -s $outdir/client.pem || ! -s $outdir/client-key.pem ]]; then
    log "making client certificate CN=$client_cn"
    cat >"$tmp/client.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
EXT
    sign client "$client_cn" "$tmp/client.ext"
else
    log "client certificate present"
fi
log "done: $outdir"
