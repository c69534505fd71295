#!/usr/bin/env bash
# Installs, starts and stops the real engines of the local stack, all on loopback, data under
# $OBS_DEV_DIR: PostgreSQL and Redis (Debian packages), Apache Kafka in KRaft mode (jars from
# Maven Central), MinIO (built with `go install`). ClickHouse is chDB, embedded in the query service.
#   scripts/engines.sh install|start|stop|status
#   scripts/engines.sh kafka-start DIR PORT CONTROLLER_PORT | kafka-stop DIR   (a broker of its own)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/dev_env.sh; load_dev_env
ROOT=$PWD
DEV=$ROOT/$OBS_DEV_DIR
RUN=$DEV/run
LOGS=$DEV/logs
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
KAFKA_JARS=$ROOT/scripts/engines/kafka/target/jars
mkdir -p "$RUN" "$LOGS"

say() { echo "engines: $*"; }
die() { echo "engines: $*" >&2; exit 1; }

pg_bin() { echo "/usr/lib/postgresql/$(ls /usr/lib/postgresql | sort -V | tail -1)/bin"; }

wait_port() {  # host port name timeout_seconds
  local deadline=$((SECONDS + $4))
  until (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || die "$3 did not open $1:$2 within $4 s (see $LOGS)"
    sleep 0.2
  done
}

alive() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

install() {
  local missing=()
  [ -d /usr/lib/postgresql ] || missing+=(postgresql)
  command -v redis-server >/dev/null || missing+=(redis-server)
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if [ ! -f "$KAFKA_JARS/.complete" ]; then
    say "resolving Kafka jars from Maven Central"
    mvn -q -B -f scripts/engines/kafka/pom.xml package
    touch "$KAFKA_JARS/.complete"
  fi
  if [ ! -x "$DEV/bin/minio" ]; then
    say "building MinIO $MINIO_VERSION with go install (a few minutes the first time)"
    GOBIN=$DEV/bin GOFLAGS=-mod=mod go install "github.com/minio/minio@$MINIO_VERSION"
  fi
}

# PostgreSQL refuses to run as root, so its data must be reachable by the postgres user; when the
# checkout sits under a private directory (/root), the data goes to /var/tmp and is linked here.
pg_data_dir() {
  if runuser -u postgres -- test -x "$DEV"; then
    echo "$DEV/postgres"
  else
    echo "/var/tmp/obs-postgres-$(echo "$ROOT" | md5sum | cut -c1-12)"
  fi
}

start_postgres() {
  local data; data=$(pg_data_dir)
  if [ ! -f "$data/PG_VERSION" ]; then
    mkdir -p "$data" && chown postgres:postgres "$data" && chmod 700 "$data"
    echo obs > "$RUN/pgpass" && chown postgres "$RUN/pgpass"
    runuser -u postgres -- "$(pg_bin)/initdb" -D "$data" -U obs --pwfile="$RUN/pgpass" \
      --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$RUN/pgpass"
    [ "$data" = "$DEV/postgres" ] || ln -sfn "$data" "$DEV/postgres"
  fi
  if ! runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    touch "$LOGS/postgres.log" && chown postgres "$LOGS/postgres.log"
    runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$data" -l "$LOGS/postgres.log" -w -t 60 start \
      -o "-p $POSTGRES_PORT -c listen_addresses=127.0.0.1 -k /tmp -c max_connections=300 -c fsync=on" >/dev/null
  fi
  wait_port 127.0.0.1 "$POSTGRES_PORT" postgres 30
}

stop_postgres() {
  local data; data=$(pg_data_dir)
  [ -f "$data/PG_VERSION" ] || return 0
  runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
}

start_redis() {
  alive redis && return 0
  mkdir -p "$DEV/redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir "$DEV/redis" --logfile "$LOGS/redis.log" --pidfile "$RUN/redis.pid"
  wait_port 127.0.0.1 "$REDIS_PORT" redis 10
}

start_kafka() {  # data_dir port controller_port pid_file
  local dir=$1 port=$2 controller=$3 pid_file=$4
  [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null && return 0
  mkdir -p "$dir"
  cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=4
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
message.max.bytes=16777216
# Local disks are small and shared (a day of bench runs left 20 GB of events and filled one):
# at most ~1 GiB per partition, in 256 MiB segments. Events stay durable in the S3 event log.
log.retention.bytes=1073741824
log.segment.bytes=268435456
PROPS
  cat > "$dir/log4j2.properties" <<PROPS
rootLogger.level=WARN
rootLogger.appenderRef.stdout.ref=STDOUT
appender.stdout.type=Console
appender.stdout.name=STDOUT
appender.stdout.layout.type=PatternLayout
appender.stdout.layout.pattern=[%d] %p %m (%c)%n
PROPS
  local java=(java -Xms256m -Xmx768m -XX:+UseG1GC -Dlog4j2.configurationFile="$dir/log4j2.properties"
              -cp "$KAFKA_JARS/*")
  if [ ! -f "$dir/data/meta.properties" ]; then
    local cluster_id
    cluster_id=$(python3 -c 'import base64,uuid;print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')
    "${java[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" >/dev/null
  fi
  nohup "${java[@]}" kafka.Kafka "$dir/server.properties" >> "$dir/kafka.log" 2>&1 &
  echo $! > "$pid_file"
  wait_port 127.0.0.1 "$port" kafka 60
}

start_s3() {
  alive s3 && return 0
  mkdir -p "$DEV/minio"
  # The background scanner (usage, healing) walks every object: slowest, so that it leaves the
  # shared cores to the stack on a machine holding millions of event-log objects.
  MINIO_ROOT_USER=$S3_ACCESS_KEY MINIO_ROOT_PASSWORD=$S3_SECRET_KEY MINIO_BROWSER=off \
    MINIO_SCANNER_SPEED=slowest \
    nohup "$DEV/bin/minio" server "$DEV/minio" --quiet --address "127.0.0.1:$S3_PORT" \
    --console-address "127.0.0.1:$S3_CONSOLE_PORT" >> "$LOGS/s3.log" 2>&1 &
  echo $! > "$RUN/s3.pid"
  wait_port 127.0.0.1 "$S3_PORT" s3 30
}

stop_pid() {
  alive "$1" || { rm -f "$RUN/$1.pid"; return 0; }
  local pid; pid=$(cat "$RUN/$1.pid")
  kill "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$RUN/$1.pid"
}

case "${1:-}" in
  install) install ;;
  start)
    start_postgres; start_redis
    start_kafka "$DEV/kafka" "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" "$RUN/kafka.pid"
    start_s3; say "postgres, redis, kafka, s3 up" ;;
  # A broker of its own (tests that restart it): data and pid file under an absolute dir.
  kafka-start) start_kafka "$2" "$3" "$4" "$2/kafka.pid" ;;
  kafka-stop) RUN=$2 stop_pid kafka ;;
  stop) stop_pid s3; stop_pid kafka; stop_pid redis; stop_postgres; say "stopped" ;;
  status)
    for e in redis kafka s3; do alive $e && echo "$e: running" || echo "$e: stopped"; done
    runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$(pg_data_dir)" status >/dev/null 2>&1 \
      && echo "postgres: running" || echo "postgres: stopped" ;;
  *) die "usage: $0 install|start|stop|status|kafka-start DIR PORT CONTROLLER_PORT|kafka-stop DIR" ;;
esac
