#!/usr/bin/env bash
# Orthanc as bonescan's DICOMweb study store, run as an ordinary background process.
#
#   bash scripts/orthanc.sh start  [--data DIR]   # install if missing, configure, start, wait until it answers
#   bash scripts/orthanc.sh status [--data DIR]   # running/stopped, URL, number of studies (exit 0 / 3)
#   bash scripts/orthanc.sh stop   [--data DIR]   # stop the Orthanc started from DIR
#
# DIR defaults to var/orthanc in the repository (git-ignored). It holds everything: the
# configuration written at each start (orthanc.json), the DICOM storage and SQLite index
# (storage/), the PID file (orthanc.pid) and the log (orthanc.log).
# Environment: ORTHANC_HTTP_PORT (default 8042), ORTHANC_DICOM_PORT (default 4242, used only
# by an Orthanc too old to switch its DICOM server off), ORTHANC_START_TIMEOUT (seconds, default 30).
#
# Then: `monailabel start_server --app apps/bonescan --studies http://127.0.0.1:8042/dicom-web ...`
# and `python scripts/upload_studies.py DIR` to send studies to it.
#
# Network exposure: Orthanc 1.10 has no bind-address option (its web server is told only a port,
# so it listens on all interfaces, 0.0.0.0:8042; checked with `ss -ltnp`). What protects it is
# "RemoteAccessAllowed": false, which makes Orthanc refuse every HTTP request that does not come
# from the local machine (127.0.0.1 / ::1), and the DICOM (port 4242) server is switched off.
# Authentication is off, so every local user and process can read and write the studies: run it on
# a single-user machine or behind a firewall. The tests run it inside a network namespace of their
# own (tests/pacs.py), where nothing else can reach it.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
usage() { echo "usage: $0 start|stop|status [--data DIR]" >&2; exit 2; }

[ $# -ge 1 ] || usage
action="$1"; shift
DATA="$REPO/var/orthanc"
while [ $# -gt 0 ]; do
    case "$1" in
        --data) [ $# -ge 2 ] || usage; DATA="$2"; shift 2 ;;
        --data=*) DATA="${1#--data=}"; shift ;;
        *) usage ;;
    esac
done
case "$action" in start|stop|status) ;; *) usage ;; esac

mkdir -p "$DATA"
DATA="$(cd "$DATA" && pwd)"
CONFIG="$DATA/orthanc.json"
PIDFILE="$DATA/orthanc.pid"
LOG="$DATA/orthanc.log"

# Whether a PID is a live process (a zombie waiting for its parent counts as gone).
alive() { [ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null; }

# PID of the Orthanc started from this data folder, or nothing (a stale PID file is ignored).
running_pid() {
    [ -f "$PIDFILE" ] || return 0
    local pid
    pid="$(tr -dc '0-9' <"$PIDFILE")"
    [ -n "$pid" ] || return 0
    if alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "Orthanc" ]; then
        echo "$pid"
    fi
}

# Port of the configuration in the data folder (the one the running Orthanc was started with).
config_port() {
    if [ -f "$CONFIG" ]; then
        sed -n 's/^ *"HttpPort" *: *\([0-9][0-9]*\).*/\1/p' "$CONFIG" | head -n 1
    else
        echo "${ORTHANC_HTTP_PORT:-8042}"
    fi
}

# GET a path from 127.0.0.1:$1 with bash's /dev/tcp (no curl needed); prints the whole answer.
http_get() {
    timeout 5 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n" "$2" "$1" >&3
        cat <&3' _ "$1" "$2" 2>/dev/null
}

port_in_use() { timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null; }

study_count() {
    # /statistics answers {"CountInstances": .., "CountStudies": N, ...}
    http_get "$1" /statistics | tr -d '\r\n ' | sed -n 's/.*"CountStudies":\([0-9]*\).*/\1/p'
}

log_tail() {
    if [ -f "$LOG" ]; then
        echo "--- last lines of $LOG ---" >&2
        tail -n 25 "$LOG" >&2
    fi
}

write_config() {
    local port="$1" plugin="$2" dicom_server
    case "$DATA$plugin" in *'"'*|*'\'*) echo "orthanc.sh: paths with \" or \\ are not supported: $DATA" >&2; exit 2 ;; esac
    # "DicomServerEnabled" lets Orthanc run without its DICOM (port 4242) server; versions
    # without the option get the port from ORTHANC_DICOM_PORT instead.
    if grep -qa DicomServerEnabled "$(command -v Orthanc)"; then
        dicom_server='"DicomServerEnabled" : false,'
    else
        dicom_server=''
    fi
    mkdir -p "$DATA/storage"
    cat >"$CONFIG.tmp" <<EOF
{
  "Name" : "bonescan",
  "StorageDirectory" : "$DATA/storage",
  "IndexDirectory" : "$DATA/storage",
  "Plugins" : [ "$plugin" ],
  "DicomWeb" : {
    "Enable" : true,
    "Root" : "/dicom-web/",
    "EnableWado" : true,
    "WadoRoot" : "/wado"
  },
  "HttpServerEnabled" : true,
  "HttpPort" : $port,
  "RemoteAccessAllowed" : false,
  "AuthenticationEnabled" : false,
  "WebDavEnabled" : false,
  $dicom_server
  "DicomPort" : ${ORTHANC_DICOM_PORT:-4242},
  "StableAge" : 2,
  "SaveJobs" : false
}
EOF
    mv "$CONFIG.tmp" "$CONFIG"
}

start() {
    local pid port plugin waited deadline
    pid="$(running_pid)"
    if [ -n "$pid" ]; then
        echo "Orthanc already running (PID $pid) at http://127.0.0.1:$(config_port)/dicom-web"
        return 0
    fi
    bash "$REPO/scripts/install_system_deps.sh" orthanc
    plugin="$(dpkg -L orthanc-dicomweb | grep -E '/libOrthancDicomWeb\.so$' | head -n 1 || true)"
    [ -n "$plugin" ] || plugin="$(dpkg -L orthanc-dicomweb | grep -E '/libOrthancDicomWeb\.so' | head -n 1 || true)"
    if [ -z "$plugin" ] || [ ! -e "$plugin" ]; then
        echo "orthanc.sh: the DICOMweb plugin of Debian's orthanc-dicomweb package was not found (dpkg -L orthanc-dicomweb)" >&2
        exit 1
    fi
    port="${ORTHANC_HTTP_PORT:-8042}"
    if port_in_use "$port"; then
        echo "orthanc.sh: port $port is already in use on this machine." >&2
        if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet orthanc 2>/dev/null; then
            echo "Debian's orthanc system service is running: 'systemctl disable --now orthanc' stops it." >&2
        fi
        echo "Stop what uses it, or choose another port: ORTHANC_HTTP_PORT=8043 $0 start" >&2
        exit 1
    fi
    write_config "$port" "$plugin"
    echo "=== $(date '+%F %T') orthanc.sh start: Orthanc $CONFIG" >>"$LOG"
    nohup Orthanc "$CONFIG" </dev/null >>"$LOG" 2>&1 &
    pid=$!
    echo "$pid" >"$PIDFILE"
    waited=0
    deadline=$(( SECONDS + ${ORTHANC_START_TIMEOUT:-30} ))
    while :; do
        if ! alive "$pid"; then
            rm -f "$PIDFILE"
            echo "orthanc.sh: Orthanc exited at start (configuration $CONFIG)." >&2
            log_tail
            exit 1
        fi
        if http_get "$port" /system | head -n 1 | grep -q ' 200 '; then
            break
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "orthanc.sh: Orthanc (PID $pid) did not answer GET http://127.0.0.1:$port/system within ${ORTHANC_START_TIMEOUT:-30} s; it is still running ('$0 stop' ends it)." >&2
            log_tail
            exit 1
        fi
        sleep 0.2
    done
    echo "Orthanc running (PID $pid) at http://127.0.0.1:$port/dicom-web (data $DATA, log $LOG)"
}

stop() {
    local pid i
    pid="$(running_pid)"
    if [ -z "$pid" ]; then
        rm -f "$PIDFILE"
        echo "Orthanc not running (data $DATA)"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do   # up to 20 s
        alive "$pid" || break
        sleep 0.2
    done
    if alive "$pid"; then
        echo "orthanc.sh: Orthanc (PID $pid) did not stop within 20 s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
        for i in $(seq 1 25); do alive "$pid" || break; sleep 0.2; done
    fi
    rm -f "$PIDFILE"
    echo "Orthanc stopped (PID $pid)"
}

status() {
    local pid port count
    pid="$(running_pid)"
    port="$(config_port)"
    if [ -z "$pid" ]; then
        echo "stopped (data $DATA)"
        return 3
    fi
    count="$(study_count "$port" || true)"
    echo "running (PID $pid) at http://127.0.0.1:$port/dicom-web, ${count:-?} studies (data $DATA)"
}

"$action"
