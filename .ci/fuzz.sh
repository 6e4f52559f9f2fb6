#!/usr/bin/env bash
# Fuzzes the decoders an attacker reaches first (fuzz/README.md) for a bounded time each.
# Installs cargo-fuzz and the nightly toolchain if missing. Sanitizer `none` with debug
# assertions: the code is `forbid(unsafe_code)`, so what there is to find is panics
# (overflow, slicing, unwrap), and an uninstrumented build is several times faster to make.
# FUZZ_SECONDS (default 20) per target. A crash fails the step; its input is in
# fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-20}"
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
started=$SECONDS
timeout 1200 cargo +nightly fuzz build -s none --debug-assertions
echo "fuzz build: $((SECONDS - started)) s"
for target in router_envelope engine_frame join_token share_data hpke_open; do
    t0=$SECONDS
    # The committed seeds are read-only inputs; new finds go to a scratch corpus.
    scratch="$(mktemp -d)"
    log="$scratch.log"
    status=0
    timeout $((seconds + 60)) cargo +nightly fuzz run -s none --debug-assertions "$target" \
        "$scratch" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=262144 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    grep -E 'stat::number_of_executed_units|ERROR|panicked|SUMMARY' "$log" || true
    if [ "$status" -ne 0 ]; then tail -n 40 "$log" >&2; fi
    rm -f "$log"
    rm -rf "$scratch"
    if [ "$status" -ne 0 ]; then
        echo "fuzz target $target failed (exit $status); see fuzz/artifacts/$target/" >&2
        exit 1
    fi
    echo "fuzz $target: $((SECONDS - t0)) s"
done
echo "fuzzing: $((SECONDS - started)) s"
