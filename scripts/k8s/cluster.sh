#!/usr/bin/env bash
# A real Kubernetes control plane on 127.0.0.1 with one kwok fake node, for checking the Helm chart:
#
#   scripts/k8s/cluster.sh DIR
#
# builds the pinned binaries (build.sh, once per machine), starts etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler and kwok, writes DIR/kubeconfig, prints "ready", and
# keeps running until it gets SIGINT/SIGTERM or its parent process exits. On the way out, also
# after a failure, it stops every process it started, by PID. DIR holds the certificates, logs,
# etcd's data and the API server's audit log (DIR/audit.log: every create and delete).
#
# kwok stands in for the kubelet (no containers run here): pods are scheduled onto the fake node,
# go Running and Ready, and pods with restartPolicy Never/OnFailure (Jobs, helm tests) succeed.
# Needs go, openssl, curl and python3.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=$(mkdir -p "${1:?usage: cluster.sh DIR}" && cd "$1" && pwd)
PARENT=$PPID
BIN=$("$HERE/build.sh")
export PATH=$BIN:$PATH KUBECONFIG=$DIR/kubeconfig
mkdir -p "$DIR/pki" "$DIR/logs"

PIDS=()
start() {  # NAME COMMAND...: in the background, output in DIR/logs/NAME.log
  local name=$1
  shift
  "$@" >"$DIR/logs/$name.log" 2>&1 &
  PIDS+=($!)
}
stop_all() {
  # Newest first, one at a time: kube-apiserver must be gone before etcd stops, or it lingers in
  # its graceful shutdown for minutes.
  local i pid n
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[$i]}
    kill "$pid" 2>/dev/null || continue
    for ((n = 0; n < 100; n++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  done
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_for() {  # WHAT COMMAND...: retry for up to 2 min (a few seconds on a quiet machine)
  local what=$1 n
  shift
  for ((n = 0; n < 400; n++)); do
    "$@" >/dev/null 2>&1 && return
    sleep 0.3
  done
  echo "cluster.sh: $what not ready after 2 min; logs in $DIR/logs" >&2
  exit 1
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

certificates() {  # a CA, the API server's serving certificate, an admin client certificate
  cd "$DIR/pki"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 -subj /CN=obs-k8s-ca 2>/dev/null
  printf '[ext]\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.cnf
  printf '[ext]\nextendedKeyUsage=clientAuth\n' >client.cnf
  openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj /CN=kube-apiserver 2>/dev/null
  openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
    -extfile server.cnf -extensions ext -out apiserver.crt 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=admin" 2>/dev/null
  openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
    -extfile client.cnf -extensions ext -out admin.crt 2>/dev/null
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  cd - >/dev/null
}

kubeconfig() {  # PORT
  cat >"$KUBECONFIG" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: obs-k8s, cluster: {server: "https://127.0.0.1:$1", certificate-authority-data: $(base64 -w0 "$DIR/pki/ca.crt")}}]
users: [{name: admin, user: {client-certificate-data: $(base64 -w0 "$DIR/pki/admin.crt"), client-key-data: $(base64 -w0 "$DIR/pki/admin.key")}}]
contexts: [{name: obs-k8s, context: {cluster: obs-k8s, user: admin}}]
current-context: obs-k8s
EOF
}

# Every object created or deleted, with its time, so a test can check the order helm acts in.
audit_policy() {
  cat >"$DIR/audit-policy.yaml" <<'EOF'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    resources: [{group: "", resources: [events]}, {group: coordination.k8s.io, resources: [leases]}]
  - level: Metadata
    verbs: [create, delete]
  - level: None
EOF
}

rm -rf "$DIR/etcd" "$DIR/audit.log"
certificates
audit_policy
etcd_port=$(free_port) peer_port=$(free_port) api_port=$(free_port)
kubeconfig "$api_port"

start etcd etcd --name obs-k8s --data-dir "$DIR/etcd" --listen-metrics-urls '' \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "obs-k8s=http://127.0.0.1:$peer_port"
wait_for etcd curl -sf "http://127.0.0.1:$etcd_port/health"

# --endpoint-reconciler-type=none: 127.0.0.1, the only address, is no valid Endpoints IP.
start kube-apiserver kube-apiserver --etcd-servers="http://127.0.0.1:$etcd_port" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" \
  --tls-cert-file="$DIR/pki/apiserver.crt" --tls-private-key-file="$DIR/pki/apiserver.key" \
  --client-ca-file="$DIR/pki/ca.crt" --service-account-key-file="$DIR/pki/sa.pub" \
  --service-account-signing-key-file="$DIR/pki/sa.key" \
  --service-account-issuer=https://kubernetes.default.svc --service-cluster-ip-range=10.96.0.0/16 \
  --authorization-mode=RBAC --endpoint-reconciler-type=none \
  --audit-policy-file="$DIR/audit-policy.yaml" --audit-log-path="$DIR/audit.log"
wait_for kube-apiserver kubectl get --raw /readyz

# --secure-port=0: no health endpoints, hence no ports that two checks at once could fight over.
start kube-controller-manager kube-controller-manager --kubeconfig="$KUBECONFIG" --secure-port=0 \
  --leader-elect=false --use-service-account-credentials=false \
  --service-account-private-key-file="$DIR/pki/sa.key" --root-ca-file="$DIR/pki/ca.crt"
start kube-scheduler kube-scheduler --kubeconfig="$KUBECONFIG" --secure-port=0 --leader-elect=false
# Fake addresses from the reserved benchmark range: only written into objects, never routed.
start kwok kwok --kubeconfig="$KUBECONFIG" --config="$HERE/kwok-stages.yaml" \
  --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --cidr=198.18.0.0/16 --node-ip=198.19.0.1 --node-lease-duration-seconds=40
kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Node
metadata:
  name: fake-node-0
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {kubernetes.io/hostname: fake-node-0, kubernetes.io/os: linux, kubernetes.io/arch: amd64}
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
EOF
wait_for node kubectl wait --for=condition=Ready node/fake-node-0 --timeout=1s
wait_for "the default ServiceAccount" kubectl get serviceaccount default
echo ready

while kill -0 "$PARENT" 2>/dev/null; do
  for pid in "${PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "cluster.sh: process $pid stopped; logs in $DIR/logs" >&2; exit 1; }
  done
  sleep 1
done
