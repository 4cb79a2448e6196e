#!/usr/bin/env bash
# Runs staticcheck at a pinned version, installing it into ./bin if needed.
set -euo pipefail
ver=${1:?version}
bin=bin/staticcheck-$ver
if [ ! -x "$bin" ]; then
	GOBIN="$PWD/bin/tmp-sc" go install "honnef.co/go/tools/cmd/staticcheck@$ver"
	mv bin/tmp-sc/staticcheck "$bin"
	rmdir bin/tmp-sc
fi
"$bin" ./...
