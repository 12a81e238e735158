#!/usr/bin/env bash
# Runs hoist's whole test suite on a Debian 12 machine, as root: installs the
# Debian packages the tests use, then runs every test of the workspace. The
# fuzz corpora are replayed by ordinary tests of the crates they exercise.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

start=$(date +%s)
cargo fmt --all --check
cargo test --workspace --all-targets --locked --no-fail-fast
echo "test.sh: passed in $(( $(date +%s) - start )) s" >&2
