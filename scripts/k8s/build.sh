#!/usr/bin/env bash
# Builds the pinned control plane (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
# etcd from tools/go.mod) and kwok once per machine, and prints the directory holding them.
#
# Only the Go module proxy is reachable here, so everything is built from source. The binaries
# live outside the clone, in a directory named after their versions, so a fresh clone on the same
# machine finds them; the Go build cache makes a rebuild after a version bump incremental.
# Cold (empty Go build cache) it costs about 15 CPU-minutes: 10-15 min on two quiet cores, 51 min
# measured while other work kept the load at 20-50. Once per machine; a warm check takes seconds.
set -euo pipefail
cd "$(dirname "$0")/tools"

version_of() { go list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' "$1"; }
K8S=$(version_of k8s.io/kubernetes)
ETCD=$(version_of go.etcd.io/etcd/server/v3)
KWOK=v0.8.0
BIN=${OBS_K8S_CACHE:-$HOME/.cache/obs-k8s}/k8s-$K8S-etcd-$ETCD-kwok-$KWOK
K8S_TOOLS=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd)
mkdir -p "$BIN"
# Two checkouts building at once would race on the same files.
exec 9>"$BIN/.lock"
flock 9

# The linker peaks near 3 GB per binary: two packages at a time, at low priority, since the
# machine is shared.
export GOFLAGS="-buildvcs=false -p=2 -mod=readonly"
missing=0
for tool in "${K8S_TOOLS[@]}"; do [ -x "$BIN/$tool" ] || missing=1; done
if [ $missing = 1 ]; then
  echo "building ${K8S_TOOLS[*]} $K8S into $BIN (once per machine: 10-15 min on quiet cores)" >&2
  # Without these stamps the server reports v0.0.0-master, and helm's .Capabilities.KubeVersion
  # (hence the chart's kubeVersion constraint) would be checked against that.
  minor=$(echo "$K8S" | cut -d. -f2)
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags="$ldflags -X $pkg.gitVersion=$K8S -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  tmp=$(mktemp -d "$BIN/.build.XXXXXX")
  nice -n 10 go build -ldflags="$ldflags" -o "$tmp/" k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl ./cmd/etcd >&2
  mv "$tmp"/* "$BIN/" && rmdir "$tmp"
fi
if [ ! -x "$BIN/kwok" ]; then
  echo "building kwok $KWOK into $BIN" >&2
  GOFLAGS="-buildvcs=false -p=2" GOBIN="$BIN" nice -n 10 go install -ldflags="-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK" >&2
fi
echo "$BIN"
