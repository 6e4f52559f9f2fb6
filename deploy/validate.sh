#!/usr/bin/env bash
# Offline validation of the deployment files (no Docker engine, no cluster needed):
#   1. shellcheck on the scripts, yamllint (deploy/.yamllint) on every YAML file under deploy/;
#   2. `docker-compose config` on docker-compose.yml with .env.example and with a gen-env.sh
#      file, and a refusal when a required variable is missing;
#   3. ed25519-public-key against the RFC 8032 test vectors;
#   4. check-deploy.py: variables, Kubernetes references and selectors hang together, and every
#      MPC_* variable handed to a service is one the code reads;
#   5. kubernetes-validate --strict on the Kubernetes manifests, for the pinned versions;
#   6. postgres-init/ on a scratch PostgreSQL cluster: the roles log in to their own database
#      and are refused another's (needs the PostgreSQL server binaries; under CI they must be
#      there);
#   7. monitoring: docker-compose.monitoring.yml resolves over the compose file; promtool checks
#      prometheus/prometheus.yml and alerts.yml and runs the rules' unit tests
#      (prometheus/alerts.test.yml); the Grafana dashboard is well-formed (every panel has a
#      query, ids are unique, the data source is the dashboard's variable);
#   8. only with MPC_SMOKE_BIN=path/to/mpc: smoke-local.py runs the compose services' resolved
#      environments as local processes on that cluster and local RabbitMQ, bootstraps the pins
#      and signs (a manual check: CI has no binary at this point).
# Installs what it needs when missing: Debian's docker-compose, shellcheck and prometheus (for
# promtool) with apt-get, and
# pinned yamllint and kubernetes-validate in a venv (MPC_DEPLOY_VENV, default
# ~/.cache/mpc-deploy/venv). Idempotent; run from anywhere: `bash deploy/validate.sh`.
set -euo pipefail

deploy=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$deploy")
venv=${MPC_DEPLOY_VENV:-$HOME/.cache/mpc-deploy/venv}
smoke_bin=${MPC_SMOKE_BIN:-}
python_requirements=(kubernetes-validate==1.37.0 yamllint==1.38.0)
# Oldest Kubernetes the manifests support and a recent one; both ship with kubernetes-validate.
kubernetes_versions=(1.30.0 1.35.0)

log() { printf '\n--> %s\n' "$*"; }
fail() {
    echo "deploy/validate.sh: $*" >&2
    exit 1
}

work=$(mktemp -d)
cleanup() {
    if [[ -n ${pg_data:-} && -f $pg_data/postmaster.pid ]]; then
        as_postgres "$pg_bin/pg_ctl" -D "$pg_data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$work" "${pg_dir:-}"
}
trap cleanup EXIT

apt_install() { # package… (updates the lists once if the first attempt fails)
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "$@" >"$work/apt.log" 2>&1; then
        apt-get update >>"$work/apt.log" 2>&1 || true
        apt-get install -y --no-install-recommends "$@" >>"$work/apt.log" 2>&1 \
            || { cat "$work/apt.log" >&2; fail "cannot install $*"; }
    fi
}

log "tools"
missing=()
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v openssl >/dev/null || missing+=(openssl)
command -v promtool >/dev/null || missing+=(prometheus)
if ((${#missing[@]})); then
    echo "installing ${missing[*]}"
    apt_install "${missing[@]}"
fi
stamp="$venv/.requirements"
if [[ ! -x $venv/bin/python || $(cat "$stamp" 2>/dev/null) != "${python_requirements[*]}" ]]; then
    echo "creating $venv with ${python_requirements[*]}"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv" 2>"$work/venv.log" || {
        apt_install python3-venv
        python3 -m venv "$venv"
    }
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${python_requirements[@]}"
    echo "${python_requirements[*]}" >"$stamp"
fi
docker-compose version --short
shellcheck --version | sed -n 2p
promtool --version 2>&1 | sed -n 1p
"$venv/bin/yamllint" --version
"$venv/bin/kubernetes-validate" --version

log "shellcheck"
scripts=("$deploy/validate.sh" "$deploy/gen-env.sh" "$deploy/ed25519-public-key"
    "$deploy/mpc-http-get" "$deploy"/postgres-init/*.sh)
shellcheck "${scripts[@]}"
for script in "${scripts[@]}"; do
    [[ -x $script ]] || fail "$script is not executable"
done

log "yamllint"
"$venv/bin/yamllint" --strict -c "$deploy/.yamllint" "$deploy"

log "docker-compose config"
compose() { docker-compose -f "$deploy/docker-compose.yml" --env-file "$1" config; }
# Variables in the caller's environment would override the env files: check the files alone
# (this also holds for smoke-local.py below).
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^MPC_' || true)
compose "$deploy/.env.example" >"$work/compose.example.yml"
"$deploy/gen-env.sh" "$work/generated.env"
compose "$work/generated.env" >"$work/compose.generated.yml"
grep -v '^MPC_JOIN_TOKEN_SEED=' "$work/generated.env" >"$work/incomplete.env"
if compose "$work/incomplete.env" >/dev/null 2>"$work/incomplete.log"; then
    fail "docker-compose config accepted an env file without MPC_JOIN_TOKEN_SEED"
fi
grep -q 'deploy/.env.example' "$work/incomplete.log" \
    || { cat "$work/incomplete.log" >&2; fail "the missing-variable error does not point to .env.example"; }
docker-compose -f "$deploy/docker-compose.yml" -f "$deploy/docker-compose.tls.yml" \
    --env-file "$deploy/.env.example" config >/dev/null
echo "ok: .env.example and a generated env file; a missing secret is refused; the TLS overlay resolves"

log "monitoring: compose override, promtool, Grafana dashboard"
MPC_GRAFANA_ADMIN_PASSWORD=validate docker-compose -f "$deploy/docker-compose.yml" \
    -f "$deploy/docker-compose.monitoring.yml" --env-file "$deploy/.env.example" config \
    >"$work/compose.monitoring.yml"
promtool check config "$deploy/prometheus/prometheus.yml"
promtool check rules "$deploy/prometheus/alerts.yml"
(cd "$deploy/prometheus" && promtool test rules alerts.test.yml)
python3 - "$deploy/grafana/mpc-system.json" <<'PY'
import json, sys
dashboard = json.load(open(sys.argv[1]))
ids, problems = set(), []
for panel in dashboard["panels"]:
    if panel["id"] in ids:
        problems.append(f"duplicate panel id {panel['id']}")
    ids.add(panel["id"])
    if panel["type"] == "row":
        continue
    if panel.get("datasource", {}).get("uid") != "${datasource}":
        problems.append(f"{panel['title']}: data source is not the dashboard's variable")
    if not panel.get("targets") or not all(t.get("expr") for t in panel["targets"]):
        problems.append(f"{panel['title']}: a query is missing")
if problems:
    sys.exit("mpc-system.json: " + "; ".join(problems))
print(f"ok: {len(ids)} panels")
PY

log "ed25519-public-key (RFC 8032 section 7.1, tests 1 to 3)"
while read -r secret public; do
    seed_b64=$(python3 -c 'import base64, sys; print(base64.b64encode(bytes.fromhex(sys.argv[1])).decode())' "$secret")
    got=$(printf '%s' "$seed_b64" | "$deploy/ed25519-public-key")
    [[ $got == "$public" ]] || fail "ed25519-public-key: $got, expected $public"
done <<'VECTORS'
9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60 d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a
4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb 3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c
c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7 fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025
VECTORS
if printf 'c2hvcnQ=' | "$deploy/ed25519-public-key" >/dev/null 2>&1; then
    fail "ed25519-public-key accepted a 5-byte seed"
fi
echo "ok"

log "check-deploy.py"
"$venv/bin/python" "$deploy/check-deploy.py" "$root" "$work/compose.generated.yml" "$work/generated.env"
echo "ok"

log "kubernetes-validate --strict (${kubernetes_versions[*]})"
manifests=()
for f in "$deploy"/kubernetes/*.yaml; do
    [[ $(basename "$f") == kustomization.yaml ]] || manifests+=("$f")
done
for version in "${kubernetes_versions[@]}"; do
    "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "${manifests[@]}"
done
echo "ok: ${#manifests[@]} files"

log "postgres-init on a scratch cluster"
pg_bin=$(dirname "$(command -v initdb 2>/dev/null || true)")
if [[ ! -x $pg_bin/initdb ]]; then
    pg_bin=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
fi
if [[ -z $pg_bin || ! -x $pg_bin/initdb ]]; then
    [[ -n ${CI:-} ]] && fail "PostgreSQL server binaries (initdb) not found"
    [[ -n $smoke_bin ]] && fail "MPC_SMOKE_BIN needs the PostgreSQL server binaries"
    echo "skipped: no PostgreSQL server binaries here (CI requires them)"
else
    # initdb refuses to run as root; the cluster lives apart from $work, which holds secrets.
    # Run from the cluster's directory: the postgres user may not be able to enter the checkout
    # (a 0700 parent, as mktemp makes).
    as_postgres() { (cd "$pg_dir" && if ((EUID == 0)); then runuser -u postgres -- "$@"; else "$@"; fi); }
    pg_dir=$(mktemp -d)
    pg_data="$pg_dir/data"
    if ((EUID == 0)); then chown postgres "$pg_dir"; fi
    as_postgres "$pg_bin/initdb" -D "$pg_data" -U postgres --auth-local=trust \
        --auth-host=scram-sha-256 >"$work/initdb.log" 2>&1 || { cat "$work/initdb.log" >&2; fail "initdb"; }
    # A free port: bind 0 and read back what the kernel chose.
    pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_postgres "$pg_bin/pg_ctl" -D "$pg_data" -w -l "$pg_dir/log" \
        -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1" start >/dev/null \
        || { cat "$pg_dir/log" >&2; fail "cannot start the scratch cluster"; }
    # The passwords of the generated env file, passed as the compose file passes them.
    env_value() { sed -n "s/^$1=//p" "$work/generated.env"; }
    declare -A password=(
        [account]=$(env_value MPC_ACCOUNT_DB_PASSWORD)
        [coordinator]=$(env_value MPC_COORDINATOR_DB_PASSWORD)
        [router]=$(env_value MPC_ROUTER_DB_PASSWORD)
        [party_1]=$(env_value MPC_PARTY_1_DB_PASSWORD)
        [party_2]=$(env_value MPC_PARTY_2_DB_PASSWORD)
        [party_3]=$(env_value MPC_PARTY_3_DB_PASSWORD)
    )
    # A copy the postgres user can read wherever the checkout is.
    cp "$deploy/postgres-init/10-mpc-databases.sh" "$pg_dir/init.sh"
    if ((EUID == 0)); then chown postgres "$pg_dir/init.sh"; fi
    as_postgres env PGHOST="$pg_dir" PGPORT="$pg_port" POSTGRES_USER=postgres \
        MPC_ACCOUNT_DB_PASSWORD="${password[account]}" \
        MPC_COORDINATOR_DB_PASSWORD="${password[coordinator]}" \
        MPC_ROUTER_DB_PASSWORD="${password[router]}" \
        MPC_PARTY_1_DB_PASSWORD="${password[party_1]}" \
        MPC_PARTY_2_DB_PASSWORD="${password[party_2]}" \
        MPC_PARTY_3_DB_PASSWORD="${password[party_3]}" \
        bash "$pg_dir/init.sh" >"$work/init.log" 2>&1 \
        || { cat "$work/init.log" >&2; fail "postgres-init/10-mpc-databases.sh failed"; }
    sql() { # role password database statement
        PGPASSWORD=$2 psql --no-psqlrc -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" \
            -U "$1" -d "$3" -c "$4"
    }
    for service in "${!password[@]}"; do
        role="mpc_$service"
        # Its own database: it can create and use tables (the services migrate at start).
        sql "$role" "${password[$service]}" "$role" \
            'CREATE TABLE deploy_check (x int); INSERT INTO deploy_check VALUES (1); DROP TABLE deploy_check;' \
            >/dev/null || fail "$role cannot use its own database"
    done
    if sql mpc_party_1 "${password[party_1]}" mpc_party_2 'SELECT 1' >/dev/null 2>&1; then
        fail "mpc_party_1 could connect to mpc_party_2's database"
    fi
    if sql mpc_party_1 wrong-password mpc_party_1 'SELECT 1' >/dev/null 2>&1; then
        fail "mpc_party_1 logged in with a wrong password"
    fi
    echo "ok: six roles, each in its own database only"

    # Optional, not in CI (it needs a built binary): the compose environments run as processes.
    if [[ -n $smoke_bin ]]; then
        log "smoke-local.py with $smoke_bin"
        if ! "$venv/bin/python" "$deploy/smoke-local.py" --mpc "$smoke_bin" \
            --compose-file "$deploy/docker-compose.yml" --env "$work/generated.env" \
            --postgres-port "$pg_port" --http-get "$deploy/mpc-http-get" --logs "$work/smoke"; then
            tail -n 20 "$work"/smoke/*.log >&2 || true
            fail "smoke-local.py failed"
        fi
    fi
fi

log "deploy: all checks passed"
