# Shell functions for scripts that run the builder-image example against
# hoist-testbed; source this file, it runs nothing by itself.
#
# testbed_start BIN DIR starts BIN (hoist-testbed) with its state in DIR,
# waits for "ready" and sources the env file, which sets the HOIST_TESTBED_*
# variables. The test bed reads its standard input from a FIFO that this
# shell keeps open on file descriptor 7, so it stops when this shell exits
# for any reason, even SIGKILL. testbed_stop stops it at once.

testbed_pid=

testbed_start() {
  local bin=$1 dir=$2 timeout=${HOIST_TESTBED_START_TIMEOUT:-900}
  mkdir -p "$dir"
  mkfifo "$dir/stdin"
  # The shell opens the FIFO for reading in the background job, which blocks
  # until the exec below opens it for writing.
  "$bin" serve --state-dir "$dir/state" <"$dir/stdin" >"$dir/stdout" 2>"$dir/log" &
  testbed_pid=$!
  exec 7>"$dir/stdin"

  local waited=0
  until grep -qx ready "$dir/stdout" 2>/dev/null; do
    if ! kill -0 "$testbed_pid" 2>/dev/null; then
      echo "hoist-testbed exited during start-up; its log:" >&2
      tail -n 30 "$dir/log" >&2
      return 1
    fi
    if [ "$waited" -ge "$timeout" ]; then
      echo "hoist-testbed was not ready after $timeout s; its log: $dir/log" >&2
      return 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
  # shellcheck disable=SC1091
  . "$dir/state/testbed.env"
}

testbed_stop() {
  [ -n "$testbed_pid" ] || return 0
  exec 7>&-
  kill -TERM "$testbed_pid" 2>/dev/null || true
  wait "$testbed_pid" 2>/dev/null || true
  testbed_pid=
}

# Runs skopeo or buildah in a private mount namespace with a tmpfs on
# /var/lib, because both write a blob-info cache to /var/lib/containers when
# run as root and have no option to move it.
contained() {
  unshare --mount --propagation private -- sh -c \
    'mount -t tmpfs -o mode=0755,size=64m hoist-contained /var/lib && exec "$0" "$@"' "$@"
}

# Prints the manifest digest of the image reference $1 in the test bed's
# registry.
registry_digest() {
  contained skopeo inspect --cert-dir "$HOIST_TESTBED_CERT_DIR" \
    --authfile "$HOIST_TESTBED_AUTH_FILE" --format '{{.Digest}}' "docker://$1"
}

# Prints the compressed size in bytes of the image reference $1 (config and
# layers, as the manifest lists them).
registry_size() {
  contained skopeo inspect --raw --cert-dir "$HOIST_TESTBED_CERT_DIR" \
    --authfile "$HOIST_TESTBED_AUTH_FILE" "docker://$1" |
    jq '.config.size + ([.layers[].size] | add)'
}

# Prints the --build-arg options that point the example at the test bed.
build_arg_options() {
  printf '%s\n' \
    --build-arg "REGISTRY=$HOIST_TESTBED_REGISTRY" \
    --build-arg "RELEASES_URL=$HOIST_TESTBED_RELEASES_URL" \
    --build-arg "TERRAFORM_VERSION=$HOIST_TESTBED_TERRAFORM_VERSION" \
    --build-arg "TFLINT_VERSION=$HOIST_TESTBED_TFLINT_VERSION"
}
