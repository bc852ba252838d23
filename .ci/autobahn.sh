#!/usr/bin/env bash
# RFC 6455 and RFC 7692 conformance: the Autobahn|Testsuite fuzzingclient against the project's echo app
# (tests/apps/autobahn_echo.py). Run from the project root; the suite's helpers live in
# ../shared/autobahn (a CI checkout has shared/ beside the project).
#
#   .ci/autobahn.sh
#
# Env:
#   PYTHON             the project's Python (default .venv/bin/python)
#   ABVENV             the wstest venv (default /tmp/abvenv); built by setup.sh only if missing
#   AUTOBAHN_CASES     case patterns (default 1.* to 10.*; "12.*,13.*" for permessage-deflate, ~30 min)
#   AUTOBAHN_OUT       report directory (default: a new directory under ${TMPDIR:-/tmp})
#   AUTOBAHN_TIMEOUT   wall-clock limit for wstest in seconds (default 600)
#   SERVER_START_TIMEOUT  seconds for the echo app to log its port (default 30)
#
# Exit status: 0 when the summary shows 0 NON-STRICT and 0 FAILED and every case's behaviour and
# close behaviour in index.json is OK or INFORMATIONAL; 1 when some case is not; 2 when the run
# itself broke (no shared/autobahn, setup failed, server did not start, no report).
set -euo pipefail

ROOT="$(pwd)"
if [ ! -f "$ROOT/blaze_green/__init__.py" ] || [ ! -f "$ROOT/tests/apps/autobahn_echo.py" ]; then
    echo "autobahn.sh: run me from the project root (no blaze_green/ or tests/apps here: $ROOT)" >&2
    exit 2
fi
AB_DIR="$(cd "$ROOT/.." && pwd)/shared/autobahn"
for f in setup.sh run.sh summarize.py; do
    if [ ! -f "$AB_DIR/$f" ]; then
        echo "autobahn.sh: $AB_DIR/$f is missing. The Autobahn helpers must sit in" \
            "../shared/autobahn relative to the project root ($ROOT)." >&2
        exit 2
    fi
done

PYTHON="${PYTHON:-.venv/bin/python}"
case "$PYTHON" in
    */*) [[ "$PYTHON" = /* ]] || PYTHON="$ROOT/$PYTHON" ;;
    *) PYTHON="$(command -v "$PYTHON" || true)" ;;
esac
if [ ! -x "$PYTHON" ]; then
    echo "autobahn.sh: no Python at ${PYTHON:-\$PYTHON} (set PYTHON, default .venv/bin/python)" >&2
    exit 2
fi
export ABVENV="${ABVENV:-/tmp/abvenv}"
export AUTOBAHN_TIMEOUT="${AUTOBAHN_TIMEOUT:-600}"
export AUTOBAHN_AGENT=blaze_green
CASES="${AUTOBAHN_CASES:-1.*,2.*,3.*,4.*,5.*,6.*,7.*,8.*,9.*,10.*}"
START_TIMEOUT="${SERVER_START_TIMEOUT:-30}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/autobahn-blaze_green.XXXXXX")"
OUT="${AUTOBAHN_OUT:-$WORK/report}"
SERVER_LOG="$WORK/server.log"

# -- wstest: build it only when it is missing (setup.sh takes a minute and needs PyPI) ----------
if [ ! -x "$ABVENV/bin/wstest" ]; then
    echo "autobahn.sh: $ABVENV/bin/wstest missing: running $AB_DIR/setup.sh"
    # setup.sh reads PYTHON as the interpreter to build the venv from: not the project's venv.
    build=(env PYTHON="${AUTOBAHN_SETUP_PYTHON:-python3}" "$AB_DIR/setup.sh")
    if command -v flock >/dev/null 2>&1; then
        # Another job may be building the same venv: wait for it, then build only if still
        # missing.
        flock "$ABVENV.lock" bash -c '[ -x "$ABVENV/bin/wstest" ] || "$@"' _ "${build[@]}" \
            || { echo "autobahn.sh: setup.sh failed" >&2; exit 2; }
    else
        "${build[@]}" || { echo "autobahn.sh: setup.sh failed" >&2; exit 2; }
    fi
fi

# -- the echo app ----------------------------------------------------------------------------
SERVER_PID=""
stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 100); do  # graceful shutdown, at most 10 s, then SIGKILL
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    if [ -n "$SERVER_PID" ]; then
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
trap stop_server EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# PYTHONPATH: serve this checkout even if the venv's editable install points elsewhere.
# BLAZE_GREEN_NO_PATCH would make the server refuse to start (it needs gevent's patching).
(
    cd "$ROOT/tests/apps"
    exec env -u BLAZE_GREEN_NO_PATCH PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
        "$PYTHON" -m blaze_green run autobahn_echo:app --host 127.0.0.1 --port 0
) >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!

PORT=""
deadline=$((SECONDS + START_TIMEOUT))
while [ -z "$PORT" ]; do
    PORT="$(sed -n 's|.*blaze_green listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p;T;q' \
        "$SERVER_LOG")"
    [ -n "$PORT" ] && break
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "autobahn.sh: the echo app exited before listening; its log:" >&2
        cat "$SERVER_LOG" >&2
        exit 2
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "autobahn.sh: the echo app did not log its port within ${START_TIMEOUT}s; its log:" >&2
        cat "$SERVER_LOG" >&2
        exit 2
    fi
    sleep 0.1
done
echo "autobahn.sh: echo app (pid $SERVER_PID) on ws://127.0.0.1:$PORT/echo; cases $CASES"

# -- the suite ---------------------------------------------------------------------------------
set +e
"$AB_DIR/run.sh" "ws://127.0.0.1:$PORT/echo" "$CASES" "$OUT" | tee "$WORK/run.out"
run_rc=${PIPESTATUS[0]}
set -e
server_alive=1
kill -0 "$SERVER_PID" 2>/dev/null || server_alive=0
stop_server

if [ "$run_rc" -ge 2 ] || [ ! -s "$OUT/index.json" ]; then
    echo "autobahn.sh: no usable report (run.sh exit $run_rc); server log: $SERVER_LOG" >&2
    tail -n 20 "$SERVER_LOG" >&2
    exit 2
fi

summary="$(grep -E '^AUTOBAHN: [0-9]+ OK, [0-9]+ NON-STRICT, .*[0-9]+ FAILED$' "$WORK/run.out" \
    | tail -n 1 || true)"
nonstrict="$(sed -n 's/.* \([0-9][0-9]*\) NON-STRICT.*/\1/p' <<<"$summary")"
failed="$(sed -n 's/.* \([0-9][0-9]*\) FAILED$/\1/p' <<<"$summary")"

# Every case, behaviour and close behaviour: OK or INFORMATIONAL (run.sh's summary counts only
# the behaviour; a WRONG CODE or UNCLEAN close must fail too).
set +e
"$PYTHON" - "$OUT" "$AUTOBAHN_AGENT" <<'PYEOF'
import json
import sys

out, agent = sys.argv[1:3]
cases = json.load(open(f"{out}/index.json", encoding="utf-8")).get(agent, {})
good = {"OK", "INFORMATIONAL"}


def key(case_id):
    return [int(part) if part.isdigit() else part for part in case_id.split(".")]


bad = [
    (case_id, r)
    for case_id, r in sorted(cases.items(), key=lambda kv: key(kv[0]))
    if r.get("behavior") not in good or r.get("behaviorClose") not in good
]
print(f"autobahn.sh: {len(cases)} cases in index.json, {len(bad)} not OK/INFORMATIONAL")
for case_id, r in bad:
    detail = ""
    try:
        with open(f"{out}/{r['reportfile']}", encoding="utf-8") as f:
            case = json.load(f)
        detail = (
            f" | expected {json.dumps(case.get('expected'))} observed"
            f" {json.dumps(case.get('received'))} | {case.get('resultClose')}"
            f" wasClean={case.get('wasClean')} closedByMe={case.get('closedByMe')}"
            f" remoteCloseCode={case.get('remoteCloseCode')}"
        )
    except (OSError, KeyError, ValueError):
        pass
    print(
        f"  {case_id}: behavior={r.get('behavior')} close={r.get('behaviorClose')}"
        f" remoteCloseCode={r.get('remoteCloseCode')}{detail}"
    )
sys.exit(0 if cases and not bad else 1)
PYEOF
index_rc=$?
set -e

echo "${summary:-autobahn.sh: no AUTOBAHN summary line in the run.sh output}"
echo "autobahn.sh: report $OUT/index.html, server log $SERVER_LOG"
[ "$server_alive" = 1 ] || echo "autobahn.sh: the echo app died during the run" >&2
if [ -n "$summary" ] && [ "$nonstrict" = 0 ] && [ "$failed" = 0 ] && [ "$index_rc" = 0 ] \
    && [ "$server_alive" = 1 ]; then
    echo "autobahn.sh: PASS"
    exit 0
fi
echo "autobahn.sh: FAIL (NON-STRICT=${nonstrict:-?}, FAILED=${failed:-?}, index check exit $index_rc)" >&2
exit 1
