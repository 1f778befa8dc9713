#!/usr/bin/env bash
# N vitviz replicas behind HAProxy on one machine, without containers. Ctrl-C stops all of them.
#
#   deploy/serve.sh [options] [N]          N replicas (default 2); open http://<this machine>:8501/
#
# Options:
#   -p, --port PORT           where HAProxy listens (default 8501)
#   -a, --address ADDR        HAProxy's address (default 0.0.0.0, every interface: the class's laptops reach
#                             it; 127.0.0.1 keeps it on this machine)
#   -r, --replica-ports LIST  comma-separated ports of the replicas, on 127.0.0.1 only (default PORT+100, +101, ...)
#   -d, --run-dir DIR         logs, pid files, the generated servers.cfg and HAProxy's admin socket
#                             (default: a new folder under $TMPDIR)
#       --restart-after S     start a replica that exits again after S seconds (default 5; 0: leave it down)
#   -h, --help
#
# Environment: HF_HOME (the Hugging Face cache every replica shares; default huggingface_hub's own,
# ~/.cache/huggingface), OMP_NUM_THREADS (torch threads per replica; default: CPU cores / N, at least 1),
# PYTHON (default python), HAPROXY (default haproxy), VITVIZ_START_TIMEOUT (seconds a replica may take to
# answer its health check, default 300). Every other variable (STREAMLIT_*, VITVIZ_OFFLINE, HF_ENDPOINT, ...)
# reaches every replica as it is. See deploy/README.md.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

REPO=$(cd "$(dirname "$0")/.." && pwd)
PORT=8501
ADDRESS=0.0.0.0
REPLICA_PORTS=""
RUN_DIR=""
RESTART_AFTER=5
N=2
while (($#)); do
  case $1 in
    -p|--port) PORT=$2; shift 2 ;;
    -a|--address) ADDRESS=$2; shift 2 ;;
    -r|--replica-ports) REPLICA_PORTS=$2; shift 2 ;;
    -d|--run-dir) RUN_DIR=$2; shift 2 ;;
    --restart-after) RESTART_AFTER=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "serve.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) N=$1; shift ;;
  esac
done
[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "serve.sh: N must be a positive number, not '$N'" >&2; exit 2; }
[[ $PORT =~ ^[0-9]+$ ]] || { echo "serve.sh: --port must be a number, not '$PORT'" >&2; exit 2; }
[[ $RESTART_AFTER =~ ^[0-9]+$ ]] || { echo "serve.sh: --restart-after takes seconds, not '$RESTART_AFTER'" >&2; exit 2; }

if [[ -n $REPLICA_PORTS ]]; then
  IFS=, read -r -a PORTS <<<"$REPLICA_PORTS"
  ((${#PORTS[@]} == N)) || { echo "serve.sh: $N replicas need $N ports, got '$REPLICA_PORTS'" >&2; exit 2; }
else
  PORTS=()
  for ((k = 0; k < N; k++)); do PORTS+=($((PORT + 100 + k))); done
fi
for p in "${PORTS[@]}"; do
  [[ $p =~ ^[0-9]+$ ]] || { echo "serve.sh: a replica port must be a number, not '$p'" >&2; exit 2; }
done

PYTHON=${PYTHON:-python}
HAPROXY=${HAPROXY:-$(command -v haproxy || echo /usr/sbin/haproxy)}
[[ -x $HAPROXY ]] || { echo "serve.sh: HAProxy not found (apt-get install haproxy, or set HAPROXY)" >&2; exit 1; }
if [[ -z ${OMP_NUM_THREADS:-} ]]; then
  OMP_NUM_THREADS=$(($(nproc) / N)); ((OMP_NUM_THREADS >= 1)) || OMP_NUM_THREADS=1
  export OMP_NUM_THREADS
fi
START_TIMEOUT=${VITVIZ_START_TIMEOUT:-300}
RUN_DIR=${RUN_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/vitviz-serve.XXXXXX")}
mkdir -p "$RUN_DIR"
RUN_DIR=$(cd "$RUN_DIR" && pwd)
rm -f "$RUN_DIR/stopping" "$RUN_DIR"/replica-*.pid "$RUN_DIR/haproxy.pid"

# The replicas, for the shared defaults of deploy/haproxy/haproxy.cfg.
{
  echo "# written by deploy/serve.sh: $N replicas on 127.0.0.1"
  echo "global"
  echo "    stats socket \"$RUN_DIR/haproxy.sock\" mode 600 level admin"
  echo "backend vitviz from vitviz"
  for ((k = 1; k <= N; k++)); do echo "    server r$k 127.0.0.1:${PORTS[k - 1]} cookie r$k"; done
} >"$RUN_DIR/servers.cfg"
export VITVIZ_BIND="$ADDRESS:$PORT"
HAPROXY_ARGS=(-f "$REPO/deploy/haproxy/haproxy.cfg" -f "$RUN_DIR/servers.cfg")
"$HAPROXY" -c -q "${HAPROXY_ARGS[@]}" || { echo "serve.sh: HAProxy refuses the configuration" >&2; exit 1; }

# One replica, started again RESTART_AFTER seconds after it exits (never with 0, nor while stopping). Its
# streamlit's pid is in RUN_DIR/replica-K.pid; TERM stops the replica and this loop.
supervise() {
  local k=$1 port=$2 child=""
  trap '[[ -n $child ]] && kill -TERM "$child" 2>/dev/null; wait "$child" 2>/dev/null; exit 0' TERM
  while :; do
    (cd "$REPO" && exec "$PYTHON" -m streamlit run app.py --server.address 127.0.0.1 --server.port "$port" \
      --server.headless true --browser.gatherUsageStats false) >>"$RUN_DIR/replica-$k.log" 2>&1 &
    child=$!
    echo "$child" >"$RUN_DIR/replica-$k.pid"
    local rc=0
    wait "$child" || rc=$?
    [[ -e $RUN_DIR/stopping ]] && exit 0
    if ((RESTART_AFTER == 0)); then
      echo "serve.sh: replica r$k (port $port) exited with status $rc; it stays down" >&2
      exit 0
    fi
    echo "serve.sh: replica r$k (port $port) exited with status $rc; starting it again in $RESTART_AFTER s" >&2
    child=""
    sleep "$RESTART_AFTER" &
    child=$!
    wait "$child" || true
  done
}

SUPERVISORS=()
HAPROXY_PID=""
stop_all() {
  trap - INT TERM EXIT
  touch "$RUN_DIR/stopping"
  echo "serve.sh: stopping HAProxy and $N replicas" >&2
  local pids=("${SUPERVISORS[@]}") pid deadline
  [[ -n $HAPROXY_PID ]] && pids+=("$HAPROXY_PID")
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  deadline=$((SECONDS + 20))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  done
  # Whatever still runs after 20 s (a replica stuck in a long computation) is killed.
  for f in "$RUN_DIR"/replica-*.pid; do [[ -e $f ]] && pids+=("$(cat "$f")"); done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -f "$RUN_DIR/haproxy.sock"
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap 'stop_all' EXIT

echo "serve.sh: starting $N replicas on 127.0.0.1:${PORTS[*]} (OMP_NUM_THREADS=$OMP_NUM_THREADS, HF_HOME=${HF_HOME:-default}); logs in $RUN_DIR" >&2
for ((k = 1; k <= N; k++)); do
  supervise "$k" "${PORTS[k - 1]}" &
  SUPERVISORS+=($!)
done

# Every replica answers its health check before HAProxy opens the door.
for ((k = 1; k <= N; k++)); do
  "$PYTHON" - "${PORTS[k - 1]}" "$START_TIMEOUT" <<'PY' || { echo "serve.sh: replica r$k did not start; see $RUN_DIR/replica-$k.log" >&2; exit 1; }
import sys, time, urllib.request
port, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as answer:
            if answer.status == 200:
                sys.exit(0)
    except OSError:
        time.sleep(0.5)
sys.exit(1)
PY
done

"$HAPROXY" -db "${HAPROXY_ARGS[@]}" >>"$RUN_DIR/haproxy.log" 2>&1 &
HAPROXY_PID=$!
echo "$HAPROXY_PID" >"$RUN_DIR/haproxy.pid"
sleep 0.5
kill -0 "$HAPROXY_PID" 2>/dev/null || { echo "serve.sh: HAProxy did not start:" >&2; tail -n 5 "$RUN_DIR/haproxy.log" >&2; exit 1; }
echo "serve.sh: vitviz is ready at http://$ADDRESS:$PORT/ ($N replicas). Ctrl-C stops it." >&2

# HAProxy runs until Ctrl-C (or a TERM); if it stops by itself, so does everything else.
rc=0
wait "$HAPROXY_PID" || rc=$?
echo "serve.sh: HAProxy exited with status $rc" >&2
exit "$rc"
