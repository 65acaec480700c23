#!/usr/bin/env bash
# Provision one machine of a unitctl cluster (Debian 12, run as root).
#
# usage: provision.sh INDEX TOTAL IP [METADATA]
#
#   INDEX     1-based number of this machine (core-01 is 1)
#   TOTAL     number of machines in the cluster
#   IP        this machine's cluster IP (public_ip, etcd listen address)
#   METADATA  k=v,k=v for unitctl.conf (default: $UNITCTL_PROVISION_METADATA)
#
# What it does (idempotent: re-running changes nothing that is already right
# and restarts etcd / the agent only when their configuration changed):
#   1. apt-get install etcd-server etcd-client python3-venv python3-pip
#      docker.io openssl (only what is missing);
#   2. TLS: takes ca.pem, server.pem/-key.pem, client.pem/-key.pem from the
#      shared directory $SRC/.vagrant-certs (the Vagrantfile makes it on the
#      host before `vagrant up`); if it is missing, machine 1 makes it there
#      with contrib/etcd-tls/gen-certs.sh (or, when that directory is
#      read-only, in /var/lib/unitctl/certs) and the others wait for it;
#      installs them into /etc/unitctl/tls;
#   3. etcd with client and peer TLS (--client-cert-auth, --peer-client-cert-auth)
#      on machines 1..ETCD_MEMBERS as a drop-in for Debian's etcd.service
#      (static bootstrap, own data dir); Debian's default etcd is disabled on
#      the other machines;
#   4. unitctl into /opt/unitctl/venv (pip install of a copy of $SRC) and
#      /usr/local/bin/{unitctl,unitctl-agent,docker-run};
#   5. /etc/unitctl/unitctl.conf, /etc/profile.d/unitctl.sh (client env for
#      login shells, e.g. `vagrant ssh core-01 -c 'unitctl list-machines'`);
#   6. contrib/unitctl-agent.service -> /etc/systemd/system, enable --now.
#
# Environment (all optional):
#   UNITCTL_PROVISION_SRC           checkout to install from    (/opt/unitctl/src)
#   UNITCTL_PROVISION_VENV          virtualenv                  (/opt/unitctl/venv)
#   UNITCTL_PROVISION_ETCD_MEMBERS  number of etcd members      (min(3, TOTAL))
#   UNITCTL_PROVISION_ETCD_IPS      their IPs, comma-separated  (consecutive IPs
#                                   ending at IP - INDEX + MEMBERS, like the Vagrantfile)
#   UNITCTL_PROVISION_CERTS_DIR     shared TLS directory        ($SRC/.vagrant-certs)
#   UNITCTL_PROVISION_CERT_SANS     extra server SANs (comma-separated), used
#                                   only when this script makes the certificates
#   UNITCTL_PROVISION_PIP_ARGS      extra pip arguments, e.g.
#                                   "--no-index --find-links /wheels"
#   UNITCTL_PROVISION_SKIP_APT=1    install no packages (they must be present)
#   UNITCTL_PROVISION_SKIP_DOCKER=1 no docker.io
#   UNITCTL_PROVISION_AGENT_TTL     agent_ttl                   (10s)
#   UNITCTL_PROVISION_WAIT          seconds to wait for etcd/agent/certs (180)
set -euo pipefail

prog=provision
log() { printf '%s[%s]: %s\n' "$prog" "${INDEX:-?}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "must run as root"
[[ $# -ge 3 && $# -le 4 ]] || die "usage: $0 INDEX TOTAL IP [METADATA]"
INDEX=$1
TOTAL=$2
IP=$3
METADATA=${4:-${UNITCTL_PROVISION_METADATA:-}}

SRC=${UNITCTL_PROVISION_SRC:-/opt/unitctl/src}
VENV=${UNITCTL_PROVISION_VENV:-/opt/unitctl/venv}
CERTS_SHARED=${UNITCTL_PROVISION_CERTS_DIR:-$SRC/.vagrant-certs}
PIP_ARGS=${UNITCTL_PROVISION_PIP_ARGS:-}
SKIP_APT=${UNITCTL_PROVISION_SKIP_APT:-0}
SKIP_DOCKER=${UNITCTL_PROVISION_SKIP_DOCKER:-0}
AGENT_TTL=${UNITCTL_PROVISION_AGENT_TTL:-10s}
WAIT=${UNITCTL_PROVISION_WAIT:-180}
CLIENT_PORT=2379
PEER_PORT=2380
TLS=/etc/unitctl/tls
STATE=/var/lib/unitctl
ETCD_DATA=/var/lib/etcd/unitctl
ETCD_DROPIN=/etc/systemd/system/etcd.service.d/unitctl.conf
AGENT_UNIT=/etc/systemd/system/unitctl-agent.service
CONF=/etc/unitctl/unitctl.conf
PROFILE=/etc/profile.d/unitctl.sh

# ---------------------------------------------------------------- arguments
is_ipv4() {
    local IFS=. o
    [[ $1 =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || return 1
    for o in $1; do ((10#$o <= 255)) || return 1; done
}
[[ $INDEX =~ ^[1-9][0-9]*$ ]] || die "INDEX must be a positive number: $INDEX"
[[ $TOTAL =~ ^[1-9][0-9]*$ ]] || die "TOTAL must be a positive number: $TOTAL"
((INDEX <= TOTAL)) || die "INDEX $INDEX > TOTAL $TOTAL"
is_ipv4 "$IP" || die "not an IPv4 address: $IP"
[[ $METADATA =~ ^[A-Za-z0-9_.,=/:-]*$ ]] || die "bad METADATA (want k=v,k=v): $METADATA"
[[ $AGENT_TTL =~ ^[0-9]+(ms|s|m|h)?$ ]] || die "bad UNITCTL_PROVISION_AGENT_TTL: $AGENT_TTL"
[[ $WAIT =~ ^[0-9]+$ ]] || die "bad UNITCTL_PROVISION_WAIT: $WAIT"
[[ -f $SRC/setup.py ]] || die "no unitctl checkout at $SRC (UNITCTL_PROVISION_SRC)"
for f in contrib/unitctl-agent.service contrib/etcd-tls/gen-certs.sh; do
    [[ -f $SRC/$f ]] || die "missing $SRC/$f"
done

MEMBERS=${UNITCTL_PROVISION_ETCD_MEMBERS:-$((TOTAL < 3 ? TOTAL : 3))}
if ! [[ $MEMBERS =~ ^[1-9][0-9]*$ ]] || ((MEMBERS > TOTAL)); then
    die "UNITCTL_PROVISION_ETCD_MEMBERS must be 1..$TOTAL: $MEMBERS"
fi

if [[ -n ${UNITCTL_PROVISION_ETCD_IPS:-} ]]; then
    IFS=, read -r -a ETCD_IPS <<<"$UNITCTL_PROVISION_ETCD_IPS"
else  # consecutive addresses, machine i at base + i (the Vagrantfile's layout)
    prefix=${IP%.*}
    first=$((${IP##*.} - INDEX + 1))
    ((first >= 1 && first + MEMBERS - 1 <= 254)) ||
        die "cannot derive the etcd member IPs from $IP; set UNITCTL_PROVISION_ETCD_IPS"
    ETCD_IPS=()
    for ((i = 0; i < MEMBERS; i++)); do ETCD_IPS+=("$prefix.$((first + i))"); done
fi
((${#ETCD_IPS[@]} == MEMBERS)) ||
    die "UNITCTL_PROVISION_ETCD_IPS has ${#ETCD_IPS[@]} addresses, want $MEMBERS"
for a in "${ETCD_IPS[@]}"; do is_ipv4 "$a" || die "bad etcd member IP: $a"; done
IS_MEMBER=0
((INDEX <= MEMBERS)) && IS_MEMBER=1
if ((IS_MEMBER)) && [[ ${ETCD_IPS[INDEX - 1]} != "$IP" ]]; then
    die "etcd member $INDEX should have IP ${ETCD_IPS[INDEX - 1]}, this machine is $IP"
fi

endpoints=()
initial_cluster=()
for ((i = 0; i < MEMBERS; i++)); do
    endpoints+=("https://${ETCD_IPS[i]}:$CLIENT_PORT")
    initial_cluster+=("etcd$((i + 1))=https://${ETCD_IPS[i]}:$PEER_PORT")
done
ENDPOINTS=$(IFS=,; printf '%s' "${endpoints[*]}")
INITIAL_CLUSTER=$(IFS=,; printf '%s' "${initial_cluster[*]}")

log "machine $INDEX/$TOTAL ip=$IP etcd members=$MEMBERS ($ENDPOINTS) member=$IS_MEMBER"

# ---------------------------------------------------------------- helpers
# put_file PATH MODE OWNER:GROUP FLAGVAR < content: write PATH only if its
# content, mode or owner differ, and then set the variable FLAGVAR to 1.
# (Always called as a plain command, so `set -e` applies inside.)
put_file() {
    local path=$1 mode=$2 owner=$3 flag=$4 tmp
    mkdir -p -- "$(dirname -- "$path")"
    tmp=$(mktemp "$path.XXXXXX")
    cat >"$tmp"
    chmod "$mode" "$tmp"
    chown "$owner" "$tmp"
    if [[ -f $path ]] && cmp -s -- "$tmp" "$path" &&
        [[ $(stat -c '%a %U:%G' -- "$path") == "$(stat -c '%a %U:%G' -- "$tmp")" ]]; then
        rm -f -- "$tmp"
        return 0
    fi
    mv -f -- "$tmp" "$path"
    printf -v "$flag" 1
    log "wrote $path"
}

# wait_for SECONDS WHAT CMD...: poll CMD once a second.
wait_for() {
    local secs=$1 what=$2
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 1
    done
    log "$what: ok"
}

unit_exists() { [[ -n $(systemctl list-unit-files --no-legend "$1" 2>/dev/null) ]]; }

etcd_health() {
    ETCDCTL_API=3 etcdctl --endpoints="$1" --cacert="$TLS/ca.pem" --cert="$TLS/client.pem" \
        --key="$TLS/client-key.pem" --dial-timeout=3s --command-timeout=5s endpoint health
}

# ---------------------------------------------------------------- 1. packages
packages=(etcd-server etcd-client python3-venv python3-pip openssl ca-certificates)
[[ $SKIP_DOCKER == 1 ]] || packages+=(docker.io)
if [[ $SKIP_APT == 1 ]]; then
    log "UNITCTL_PROVISION_SKIP_APT=1: not installing packages"
else
    missing=()
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    if ((${#missing[@]})); then
        log "apt-get install ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    else
        log "packages present"
    fi
fi
for cmd in etcd etcdctl openssl python3 systemctl; do
    command -v "$cmd" >/dev/null || die "$cmd not found (install ${packages[*]})"
done
python3 -c 'import ensurepip, venv' 2>/dev/null || [[ -x $VENV/bin/pip ]] ||
    die "python3-venv is missing"
if [[ $SKIP_DOCKER != 1 ]]; then
    command -v docker >/dev/null || die "docker not found"
    systemctl enable --now docker.service
fi

getent group unitctl >/dev/null || groupadd --system unitctl
# members of group unitctl may read the client key (the vagrant user, so that
# `vagrant ssh -c 'unitctl ...'` works without sudo)
if getent passwd vagrant >/dev/null && ! id -nG vagrant | tr ' ' '\n' | grep -qx unitctl; then
    usermod -a -G unitctl vagrant
fi

# ---------------------------------------------------------------- 2. TLS
make_certs() {  # make_certs DIR
    local sans=("${ETCD_IPS[@]}") extra
    if [[ -n ${UNITCTL_PROVISION_CERT_SANS:-} ]]; then
        IFS=, read -r -a extra <<<"$UNITCTL_PROVISION_CERT_SANS"
        sans+=("${extra[@]}")
    fi
    bash "$SRC/contrib/etcd-tls/gen-certs.sh" "$1" "${sans[@]}"
}
certs_in() { [[ -s $1/ca.pem && -s $1/server.pem && -s $1/server-key.pem &&
    -s $1/client.pem && -s $1/client-key.pem ]]; }

if certs_in "$CERTS_SHARED"; then
    certs=$CERTS_SHARED
elif ((INDEX == 1)); then
    if mkdir -p -- "$CERTS_SHARED" 2>/dev/null && [[ -w $CERTS_SHARED ]] &&
        touch "$CERTS_SHARED/.probe" 2>/dev/null; then
        rm -f -- "$CERTS_SHARED/.probe"
        certs=$CERTS_SHARED
    else
        certs=$STATE/certs
        log "$CERTS_SHARED is not writable: certificates stay local in $certs" \
            "(other machines cannot get them; fine for a 1-machine cluster)"
    fi
    make_certs "$certs"
else
    log "waiting up to ${WAIT}s for the certificates in $CERTS_SHARED (made by machine 1)"
    wait_for "$WAIT" "certificates" certs_in "$CERTS_SHARED" ||
        die "no certificates in $CERTS_SHARED: run contrib/etcd-tls/gen-certs.sh there" \
            "(the Vagrantfile's trigger does) or provision machine 1 first"
    certs=$CERTS_SHARED
fi
openssl verify -CAfile "$certs/ca.pem" "$certs/server.pem" "$certs/client.pem" >/dev/null ||
    die "certificates in $certs do not verify against $certs/ca.pem"
if ((IS_MEMBER)); then  # the server certificate must name this member's address
    openssl x509 -in "$certs/server.pem" -noout -checkip "$IP" | grep -q 'does match' ||
        die "$certs/server.pem has no subjectAltName IP:$IP; remake it" \
            "(gen-certs.sh OUTDIR ${ETCD_IPS[*]})"
fi

tls_changed=0
install -d -m 0755 "$TLS"
etcd_group=root
getent group etcd >/dev/null && etcd_group=etcd
put_file "$TLS/ca.pem" 0644 root:root tls_changed <"$certs/ca.pem"
put_file "$TLS/client.pem" 0644 root:root tls_changed <"$certs/client.pem"
put_file "$TLS/client-key.pem" 0640 root:unitctl tls_changed <"$certs/client-key.pem"
if ((IS_MEMBER)); then
    put_file "$TLS/server.pem" 0644 root:root tls_changed <"$certs/server.pem"
    put_file "$TLS/server-key.pem" 0640 "root:$etcd_group" tls_changed <"$certs/server-key.pem"
fi

# ---------------------------------------------------------------- 3. etcd
if ((IS_MEMBER)); then
    # Debian's etcd.service (User=etcd, Type=notify) with our flags. The
    # empty assignments drop Debian's ETCD_NAME/ETCD_DATA_DIR defaults and
    # /etc/default/etcd, so only the command line below counts. Own data dir:
    # the member Debian started on installation (http, /var/lib/etcd/default)
    # must not be reused for a different cluster.
    etcd_changed=0
    put_file "$ETCD_DROPIN" 0644 root:root etcd_changed <<EOF
# written by unitctl contrib/vagrant/provision.sh
[Service]
Environment=
EnvironmentFile=
ExecStart=
ExecStart=/usr/bin/etcd --name etcd$INDEX --data-dir $ETCD_DATA \\
  --listen-client-urls https://$IP:$CLIENT_PORT,https://127.0.0.1:$CLIENT_PORT \\
  --advertise-client-urls https://$IP:$CLIENT_PORT \\
  --listen-peer-urls https://$IP:$PEER_PORT \\
  --initial-advertise-peer-urls https://$IP:$PEER_PORT \\
  --initial-cluster $INITIAL_CLUSTER \\
  --initial-cluster-token unitctl-etcd --initial-cluster-state new \\
  --client-cert-auth --trusted-ca-file $TLS/ca.pem \\
  --cert-file $TLS/server.pem --key-file $TLS/server-key.pem \\
  --peer-client-cert-auth --peer-trusted-ca-file $TLS/ca.pem \\
  --peer-cert-file $TLS/server.pem --peer-key-file $TLS/server-key.pem \\
  --auto-compaction-retention 1
Restart=always
RestartSec=2
# static bootstrap: the first member waits for the others to come up
TimeoutStartSec=infinity
EOF
    if [[ ! -d $(dirname "$ETCD_DATA") ]]; then
        install -d -m 0700 -g "$etcd_group" "$(dirname "$ETCD_DATA")"
        [[ $etcd_group == root ]] || chown etcd "$(dirname "$ETCD_DATA")"
    fi
    systemctl daemon-reload
    systemctl enable -q etcd.service
    # --no-block: a member of a 3-member cluster only gets ready once a quorum
    # has been provisioned, i.e. not while machine 1 is being provisioned.
    if ((etcd_changed || tls_changed)) || ! systemctl is-active -q etcd.service; then
        log "(re)starting etcd member etcd$INDEX"
        systemctl restart --no-block etcd.service
    fi
elif unit_exists etcd.service; then
    # Debian's package started a default (http, localhost) member: not wanted.
    if systemctl is-enabled -q etcd.service 2>/dev/null ||
        systemctl is-active -q etcd.service; then
        log "disabling Debian's default etcd (not a member)"
        systemctl disable --now etcd.service
    fi
fi

# ---------------------------------------------------------------- 4. unitctl
install -d -m 0755 "$STATE" "$(dirname "$VENV")"
[[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
# Build from a copy: $SRC may be read-only (a synced folder or bind mount) and
# setuptools writes build/ and *.egg-info next to the sources.
build=$(mktemp -d /tmp/unitctl-src.XXXXXX)
trap 'rm -rf -- "$build"' EXIT
tar -C "$SRC" --exclude=./.git --exclude=./.vagrant --exclude=./.vagrant-certs \
    --exclude=./.venv --exclude=./build --exclude=./dist --exclude='*.egg-info' \
    --exclude=__pycache__ --exclude=./.mypy_cache --exclude=./.ruff_cache \
    --exclude=./.pytest_cache --exclude=./.hypothesis --exclude=./.benchmarks \
    -cf - . | tar -C "$build" -xf -
src_hash=$(cd "$build" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum |
    sha256sum | cut -d' ' -f1)
pkg_changed=0
if [[ $(cat "$STATE/installed-src.sha256" 2>/dev/null) != "$src_hash" ]] ||
    ! "$VENV/bin/python" -c 'import unitctl' 2>/dev/null; then
    read -r -a pip_args <<<"$PIP_ARGS"
    log "pip install unitctl into $VENV ${pip_args[*]}"
    # --force-reinstall --no-deps: same version number, new code; then the
    # dependencies (a no-op when satisfied)
    env -u PIP_TARGET -u PIP_PREFIX -u PIP_USER "$VENV/bin/pip" install -q \
        --disable-pip-version-check --no-cache-dir "${pip_args[@]}" "$build"
    env -u PIP_TARGET -u PIP_PREFIX -u PIP_USER "$VENV/bin/pip" install -q \
        --disable-pip-version-check --no-cache-dir --force-reinstall --no-deps \
        "${pip_args[@]}" "$build"
    printf '%s\n' "$src_hash" >"$STATE/installed-src.sha256"
    pkg_changed=1
else
    log "unitctl in $VENV is up to date"
fi
for exe in unitctl unitctl-agent docker-run; do
    [[ -x $VENV/bin/$exe ]] || die "$VENV/bin/$exe missing after pip install"
    if [[ $(readlink "/usr/local/bin/$exe" 2>/dev/null) != "$VENV/bin/$exe" ]]; then
        ln -sfn "$VENV/bin/$exe" "/usr/local/bin/$exe"
        log "linked /usr/local/bin/$exe"
    fi
done

# ---------------------------------------------------------------- 5. config
conf_changed=0
put_file "$CONF" 0644 root:root conf_changed <<EOF
etcd_servers = $ENDPOINTS
etcd_key_prefix = /unitctl/
etcd_cafile = $TLS/ca.pem
etcd_certfile = $TLS/client.pem
etcd_keyfile = $TLS/client-key.pem
public_ip = $IP
metadata = $METADATA
agent_ttl = $AGENT_TTL
EOF
profile_changed=0  # login shells pick it up; nothing to restart
put_file "$PROFILE" 0644 root:root profile_changed <<EOF
# unitctl / etcdctl client settings (written by unitctl provision.sh)
export UNITCTL_ENDPOINT=$ENDPOINTS
export UNITCTL_CA_FILE=$TLS/ca.pem
export UNITCTL_CERT_FILE=$TLS/client.pem
export UNITCTL_KEY_FILE=$TLS/client-key.pem
export ETCDCTL_API=3
export ETCDCTL_ENDPOINTS=$ENDPOINTS
export ETCDCTL_CACERT=$TLS/ca.pem
export ETCDCTL_CERT=$TLS/client.pem
export ETCDCTL_KEY=$TLS/client-key.pem
EOF
((profile_changed)) || log "$PROFILE up to date"

# ---------------------------------------------------------------- 6. agent
unit_changed=0
put_file "$AGENT_UNIT" 0644 root:root unit_changed <"$SRC/contrib/unitctl-agent.service"
systemctl daemon-reload
systemctl enable -q unitctl-agent.service
# --no-block: Type=notify, READY comes once etcd answers, which on machine 1
# of a 3-member cluster happens only after machine 2 has been provisioned.
if ! systemctl is-active -q unitctl-agent.service; then
    log "starting unitctl-agent"
    systemctl start --no-block unitctl-agent.service
elif ((unit_changed || conf_changed || pkg_changed || tls_changed)); then
    log "restarting unitctl-agent (configuration changed)"
    systemctl restart --no-block unitctl-agent.service
fi

# ---------------------------------------------------------------- checks
# Once a quorum of members is provisioned (this machine is member
# floor(MEMBERS/2)+1 or later), etcd and then the agent must come up.
if ((INDEX >= MEMBERS / 2 + 1)); then
    local_ep=$ENDPOINTS
    ((IS_MEMBER)) && local_ep=https://127.0.0.1:$CLIENT_PORT
    wait_for "$WAIT" "etcd healthy ($local_ep)" etcd_health "$local_ep" ||
        die "etcd at $local_ep not healthy after ${WAIT}s (journalctl -u etcd)"
    wait_for "$WAIT" "unitctl-agent active" systemctl is-active -q unitctl-agent.service ||
        die "unitctl-agent not active after ${WAIT}s (journalctl -u unitctl-agent)"
else
    log "etcd has no quorum before machine $((MEMBERS / 2 + 1)) is provisioned;" \
        "etcd and unitctl-agent will finish starting then"
fi
log "done"
