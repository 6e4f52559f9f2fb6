#!/usr/bin/env bash
# The SDKs (sdk/python, sdk/go, sdk/typescript) against live `mpc up`s, and schemathesis against
# the Account Service's and the Server Party API's OpenAPI documents. Called by .ci/run after the
# cargo tests (which built target/debug/mpc); each suite starts its own `mpc up` on ephemeral
# loopback ports with a fresh data directory, so the three run in parallel.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }
secs() { echo $(( $(date +%s) - $1 )); }

export MPC_BIN="$PWD/target/debug/mpc"
cargo build -p mpc-cli --locked --quiet
work="$PWD/target/ci-sdks"
rm -rf "$work" && mkdir -p "$work"

log "SDK toolchains (Debian's golang-go, a Python venv from PyPI, npm ci)"
t0=$(date +%s)
if ! command -v go >/dev/null; then
    apt-get install -y -q golang-go >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q golang-go >/dev/null; }
fi
go version
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check -e './sdk/python[test]' 'schemathesis==4.32.5'
(cd sdk/typescript && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build)
echo "toolchains: $(secs "$t0") s"

log "SDK suites in parallel (python: pytest, go: vet + test, typescript: node --test)"
t0=$(date +%s)
(cd sdk/python && "$work/venv/bin/pytest" -q -p no:cacheprovider) >"$work/python.log" 2>&1 &
python_pid=$!
(cd sdk/go && export GOPROXY=off GOCACHE="$work/gocache" && go vet ./... && go test -count=1 ./...) >"$work/go.log" 2>&1 &
go_pid=$!
(cd sdk/typescript && node --test test/unit.test.mjs test/webhooks.test.mjs test/live.test.mjs) >"$work/typescript.log" 2>&1 &
ts_pid=$!
failed=0
for suite in python go typescript; do
    pid_var="${suite/typescript/ts}_pid"
    if wait "${!pid_var}"; then status=ok; else status=FAILED; failed=1; fi
    printf -- '--- %s: %s\n' "$suite" "$status"
    tail -n 25 "$work/$suite.log"
done
echo "SDK suites: $(secs "$t0") s"
[ "$failed" = 0 ] || { echo "an SDK suite failed" >&2; exit 1; }

log "schemathesis: both OpenAPI documents, 60 s each, in parallel"
t0=$(date +%s)
data="$work/schemathesis-data"
# Its checks send requests without a key on purpose; the credential-failure throttle would then
# answer everything 429 for a minute (the throttle has its own tests: e2e_abuse.rs).
env -u MPC_API_KEY MPC_AUTH_FAILURE_LIMIT=0 "$MPC_BIN" up --ephemeral-ports --host 127.0.0.1 --data-dir "$data" >"$work/up.log" 2>&1 &
up_pid=$!
trap 'kill -TERM "$up_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1200); do [ -s "$data/endpoints.json" ] && break; sleep 0.1; done
read -r account party_api key < <("$work/venv/bin/python" - "$data" <<'EOF'
import json, sys, time, urllib.request
d = sys.argv[1]
e = json.load(open(f"{d}/endpoints.json"))
for _ in range(1200):
    try:
        if all(urllib.request.urlopen(f"{u}/readyz", timeout=2).status == 200 for u in (e["account"], e["party_api"])):
            break
    except OSError:
        time.sleep(0.1)
print(e["account"], e["party_api"], json.load(open(f"{d}/secrets.json"))["api_key"])
EOF
)
checks=not_a_server_error,status_code_conformance,response_schema_conformance
run_st() { # name url (from $work: schemathesis keeps a cache in its working directory)
    cd "$work" && "$work/venv/bin/schemathesis" run "$2/openapi.json" -H "X-API-Key: $key" --checks "$checks" \
        --max-time 60 --request-timeout 30 --report-dir "$work/schemathesis-$1" >"$work/schemathesis-$1.log" 2>&1
}
run_st account "$account" & st_account=$!
run_st party-api "$party_api" & st_party=$!
failed=0
for name in account party-api; do
    pid_var="st_${name/party-api/party}"
    if wait "${!pid_var}"; then status=ok; else status=FAILED; failed=1; fi
    printf -- '--- schemathesis %s: %s\n' "$name" "$status"
    grep -E 'Test cases:|generated|FAILURES|Failed|failed' "$work/schemathesis-$name.log" | tail -n 15 || true
done
kill -TERM "$up_pid" 2>/dev/null || true
wait "$up_pid" 2>/dev/null || true
trap - EXIT
echo "schemathesis: $(secs "$t0") s"
if [ "$failed" != 0 ]; then
    cat "$work"/schemathesis-*.log | tail -n 200
    echo "schemathesis found problems" >&2
    exit 1
fi
