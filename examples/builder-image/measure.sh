#!/usr/bin/env bash
# Times hoist and `buildah bud` on both variants of the builder-image example
# in the same run, against one hoist-testbed, and prints the ratios and the
# image sizes.
#
# Usage: examples/builder-image/measure.sh [ROUNDS]   (default: 1)
#
# Each build starts cold: buildah gets an empty storage root, and both push
# to the test bed's registry, which holds only the base images, so every
# layer is uploaded. The buildah time is `buildah bud` plus `buildah push`,
# which is what the hoist executor does in one command. The Debian variant
# downloads its packages from the Debian mirror in both builds, so its
# figures include the mirror's speed at that moment. A builder that fails is
# reported and left out of the ratios, and the script then exits with 1.
set -euo pipefail
cd "$(dirname "$0")/../.."

rounds=${1:-1}
scripts/install-deps.sh
cargo build --release --locked --bin hoist --bin hoist-sandbox --bin hoist-login --bin hoist-testbed
bin=$PWD/target/release

# shellcheck source=examples/builder-image/testbed.sh
. examples/builder-image/testbed.sh
work=$(mktemp -d /var/tmp/hoist-measure.XXXXXX)
cleanup() {
  testbed_stop
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

testbed_start "$bin/hoist-testbed" "$work/testbed"
REG=$HOIST_TESTBED_REGISTRY
mapfile -t build_args < <(build_arg_options)

export DOCKER_CONFIG=$work/.docker
"$bin/hoist-login" --config "$DOCKER_CONFIG" -u "$HOIST_TESTBED_USER" \
  --password-stdin "$REG" <"$HOIST_TESTBED_PASSWORD_FILE" >/dev/null

now() { date +%s.%N; }
# Prints $2 - $1 with one decimal.
elapsed() { awk -v start="$1" -v end="$2" 'BEGIN { printf "%.1f", end - start }'; }

# build_buildah VARIANT DESTINATION LOG
build_buildah() {
  local context=$PWD/examples/builder-image/$1 root
  root=$(mktemp -d /var/tmp/hoist-buildah-measure.XXXXXX)
  local buildah=(contained buildah --root "$root/storage" --runroot "$root/run"
    --storage-driver overlay)
  local status=0
  {
    "${buildah[@]}" bud --isolation chroot --cert-dir "$HOIST_TESTBED_CERT_DIR" \
      --authfile "$HOIST_TESTBED_AUTH_FILE" "${build_args[@]}" \
      --file "$context/Dockerfile" --tag localhost/measure "$context" &&
      "${buildah[@]}" push --cert-dir "$HOIST_TESTBED_CERT_DIR" \
        --authfile "$HOIST_TESTBED_AUTH_FILE" localhost/measure "docker://$2"
  } >"$3" 2>&1 || status=$?
  # The overlay mounts lived in the private mount namespace of `contained`
  # and ended with it, so the storage root is plain files now.
  rm -rf "$root"
  return "$status"
}

# build_hoist VARIANT DESTINATION LOG
build_hoist() {
  local context=$PWD/examples/builder-image/$1
  "$bin/hoist" --context "$context" --dockerfile "$context/Dockerfile" \
    --destination "$2" "${build_args[@]}" \
    --registry-certificate "$REG=$HOIST_TESTBED_CA_CERT" >"$3" 2>&1
}

printf '%-8s %-6s %9s %9s %6s\n' variant round hoist_s buildah_s ratio
declare -A sizes
failures=0
for variant in debian busybox; do
  for round in $(seq "$rounds"); do
    times=()
    for builder in buildah hoist; do
      destination=$REG/measure-$builder-$variant:$round
      log=$work/$builder-$variant-$round.log
      start=$(now)
      if "build_$builder" "$variant" "$destination" "$log"; then
        times+=("$(elapsed "$start" "$(now)")")
        sizes[$builder-$variant]=$(registry_size "$destination")
      else
        echo "measure: $builder failed on $variant; last lines of its log:" >&2
        tail -n 5 "$log" >&2
        times+=(failed)
        failures=$((failures + 1))
      fi
    done
    ratio=n/a
    if [ "${times[0]}" != failed ] && [ "${times[1]}" != failed ]; then
      ratio=$(awk -v hoist="${times[1]}" -v buildah="${times[0]}" \
        'BEGIN { printf "%.2f", hoist / buildah }')
    fi
    printf '%-8s %-6s %9s %9s %6s\n' "$variant" "$round" "${times[1]}" "${times[0]}" "$ratio"
  done
done

echo
printf '%-8s %-8s %12s\n' variant builder size_bytes
for key in buildah-debian hoist-debian buildah-busybox hoist-busybox; do
  printf '%-8s %-8s %12s\n' "${key#*-}" "${key%%-*}" "${sizes[$key]:-n/a}"
done
[ "$failures" -eq 0 ]
