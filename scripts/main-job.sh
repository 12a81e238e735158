#!/usr/bin/env bash
# The main job: builds the example builder image with hoist and pushes it to a
# local registry under two tags, as a GitLab CI job does with Kaniko.
#
# Usage: scripts/main-job.sh [all|debian|busybox]   (default: all)
#
# The debian variant is pushed as builder:latest and builder:<short commit>,
# the busybox variant as builder-busybox:latest and builder-busybox:<short
# commit>. The registry (htpasswd auth over TLS), the base images and the
# release server of the Terraform and TFLint zips come from hoist-testbed,
# which runs on loopback and stops when this script exits.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-all}" in
  all) variants=(debian busybox) ;;
  debian | busybox) variants=("$1") ;;
  *)
    echo "usage: scripts/main-job.sh [all|debian|busybox]" >&2
    exit 2
    ;;
esac

scripts/install-deps.sh
cargo build --release --locked --bin hoist --bin hoist-sandbox --bin hoist-login --bin hoist-testbed
bin=$PWD/target/release

# shellcheck source=examples/builder-image/testbed.sh
. examples/builder-image/testbed.sh
work=$(mktemp -d /var/tmp/hoist-main-job.XXXXXX)
cleanup() {
  testbed_stop
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "main-job: starting hoist-testbed (the first run builds the base images)" >&2
testbed_start "$bin/hoist-testbed" "$work/testbed"
REG=$HOIST_TESTBED_REGISTRY
echo "main-job: registry $REG, release server $HOIST_TESTBED_RELEASES_URL" >&2

# The credentials go into a Docker config.json, as Kaniko's /kaniko/.docker.
export DOCKER_CONFIG=$work/.docker
"$bin/hoist-login" --config "$DOCKER_CONFIG" -u "$HOIST_TESTBED_USER" \
  --password-stdin "$REG" <"$HOIST_TESTBED_PASSWORD_FILE" >&2

short_sha=${CI_COMMIT_SHORT_SHA:-$(git rev-parse --short=8 HEAD)}
mapfile -t build_args < <(build_arg_options)

for variant in "${variants[@]}"; do
  case "$variant" in
    debian) repository=builder ;;
    busybox) repository=builder-busybox ;;
  esac
  context=$PWD/examples/builder-image/$variant
  digest_file=$work/$variant.digest

  echo "main-job: building $variant with hoist" >&2
  start=$(date +%s)
  "$bin/hoist" \
    --context "$context" \
    --dockerfile "$context/Dockerfile" \
    --destination "$REG/$repository:latest" \
    --destination "$REG/$repository:$short_sha" \
    "${build_args[@]}" \
    --registry-certificate "$REG=$HOIST_TESTBED_CA_CERT" \
    --digest-file "$digest_file"
  echo "main-job: $variant built and pushed in $(($(date +%s) - start)) s" >&2

  pushed=$(cat "$digest_file")
  latest=$(registry_digest "$REG/$repository:latest")
  commit=$(registry_digest "$REG/$repository:$short_sha")
  echo "$REG/$repository:latest $latest"
  echo "$REG/$repository:$short_sha $commit"
  if [ "$latest" != "$pushed" ] || [ "$commit" != "$pushed" ]; then
    echo "main-job: the tags of $repository do not both resolve to $pushed" >&2
    exit 1
  fi
done
echo "main-job: passed" >&2
