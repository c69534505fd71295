#!/usr/bin/env bash
# Prints the path of the pinned helm, building it first if it is missing or another version.
# Helm's release downloads are not reachable here, only the Go module proxy, so it is built from
# source with `go install` (about 90 s on two cores) and kept in .dev/bin.
set -euo pipefail
cd "$(dirname "$0")/../.."
HELM_VERSION=v3.22.0
bin="$PWD/.dev/bin/helm"
# `go version -m` reads the module version the binary was built from (helm's own `version`
# command shows only major.minor when built without release ldflags).
if ! go version -m "$bin" 2>/dev/null | grep -qE "^[[:space:]]+mod[[:space:]]+helm.sh/helm/v3[[:space:]]+$HELM_VERSION[[:space:]]"; then
  echo "building helm $HELM_VERSION with go install" >&2
  mkdir -p .dev/bin
  GOBIN="$PWD/.dev/bin" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
fi
echo "$bin"
