#!/usr/bin/env bash
# One database and one login role per service and per server party, so that no party can read
# another's rows (DESIGN.md §6). The postgres image runs this once, when it initialises an empty
# data directory; the passwords come from the container's environment (deploy/.env).
# To add a role to an existing volume, run the same statements by hand.
set -euo pipefail

create() { # name password: a role and a database of that name, owned by it, closed to others
    psql --no-psqlrc -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
        -v name="$1" -v password="$2" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
}

create mpc_account "${MPC_ACCOUNT_DB_PASSWORD:?}"
create mpc_coordinator "${MPC_COORDINATOR_DB_PASSWORD:?}"
create mpc_router "${MPC_ROUTER_DB_PASSWORD:?}"
create mpc_party_1 "${MPC_PARTY_1_DB_PASSWORD:?}"
create mpc_party_2 "${MPC_PARTY_2_DB_PASSWORD:?}"
create mpc_party_3 "${MPC_PARTY_3_DB_PASSWORD:?}"
