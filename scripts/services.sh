#!/usr/bin/env bash
# Local infrastructure for development, tests and CI: PostgreSQL + Apache Kafka
# (KRaft, single node), without Docker.
#
# Usage:
#   scripts/services.sh [start|stop|status|env] [--pg-only|--kafka-only]
#   scripts/services.sh start-pg | stop-pg | start-kafka | stop-kafka
#
#   eval "$(scripts/services.sh)"      # start both (idempotent) and export the URLs
#
# stdout carries ONLY the `export ...` lines (for start/env) or the status
# report (for status); all progress and diagnostics go to stderr.
#
# State lives in $REPO/.services/ (data, logs, pid files, generated configs);
# the Kafka jars are fetched by Maven into $REPO/.kafka-dist/libs. Both are
# git-ignored. Delete them to start from scratch.
#
# Environment overrides:
#   PG_PORT (25432), KAFKA_PORT (29092), KAFKA_CONTROLLER_PORT (KAFKA_PORT+1),
#   SERVICES_TIMEOUT (120, seconds to wait for each service), JAVA17 (path to a
#   Java 17 `java` binary).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=$REPO/.services
DIST=$REPO/.kafka-dist
KAFKA_POM=$REPO/scripts/kafka/pom.xml
KAFKA_LOG4J=$REPO/scripts/kafka/log4j2.xml

PG_PORT=${PG_PORT:-25432}
KAFKA_PORT=${KAFKA_PORT:-29092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}
TIMEOUT=${SERVICES_TIMEOUT:-120}
# The default ports sit below Linux's ephemeral range (32768-60999): a port in
# that range can be taken at any moment as the local end of some client's
# connection (a pooled database connection, say), and a broker restarted while
# that connection lives fails to bind ("Address already in use").

DB_USER=interviews
DB_PASSWORD=interviews
DATABASES=(interviews interviews_test)

# Keep the real stdout on fd 3 for the export lines; everything else
# (including output of apt, mvn, pg_ctl, ...) goes to stderr so that
# `eval "$(scripts/services.sh)"` only ever sees shell code.
exec 3>&1 1>&2

log() { echo "[services] $*" >&2; }
die() { echo "[services] ERROR: $*" >&2; exit 1; }

# True if process $1 still exists and is not just an exited zombie. A zombie
# answers kill -0 until pid 1 reaps it; and when a JVM dies its main thread can
# show as a zombie while other threads are still tearing down (holding the
# listening sockets), so only "zombie with a single task left" counts as dead.
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local stat tasks
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]] && return 0
  tasks=(/proc/"$1"/task/*)
  ((${#tasks[@]} > 1))
}

# True if something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 6<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# True once nothing listens on 127.0.0.1:$1, waiting up to PORT_WAIT seconds
# (default 60) for a server that is still shutting down to let the port go.
port_frees() {
  local waited=0
  while port_open "$1"; do
    ((waited >= ${PORT_WAIT:-60})) && return 1
    ((waited == 0)) && log "port $1 is taken; waiting up to ${PORT_WAIT:-60}s for it to free ..."
    sleep 1
    waited=$((waited + 1))
  done
}

# Log every socket whose local end is one of the given ports (to say who holds
# a port a server could not bind).
port_holders() {
  local p
  for p; do
    log "sockets on local port $p:"
    ss -tanpH "( sport = :$p )" >&2 2>/dev/null || true
  done
}

apt_install() {
  [[ $EUID -eq 0 ]] || die "need root to apt-get install $*"
  log "installing $* with apt-get (one-time) ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "$@"
}

# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------

PG_BIN='' PG_DIR='' PG_DATA='' PG_LOG=''

# Newest installed server binary, e.g. /usr/lib/postgresql/15/bin/postgres.
newest_postgres() {
  compgen -G '/usr/lib/postgresql/*/bin/postgres' | sort -V | tail -n1 || true
}

# $1 = "install": install the server when it is missing (start only; stop and
# status on a machine without PostgreSQL just report it as not running).
pg_setup_paths() {
  local postgres
  postgres=$(newest_postgres)
  if [[ -z $postgres ]]; then
    [[ ${1:-} == install ]] || return 1
    apt_install postgresql
    postgres=$(newest_postgres)
    [[ -n $postgres ]] || die "postgresql installed but no /usr/lib/postgresql/*/bin/postgres found"
  fi
  PG_BIN=$(dirname "$postgres")

  # The server refuses to run as root, so when we are root everything runs as
  # the `postgres` OS user that the Debian package creates. That user must be
  # able to reach the data directory; if the checkout sits somewhere it cannot
  # traverse (e.g. under /root), keep the data under /var/lib/postgresql and
  # leave a symlink at .services/pg so the layout stays the same.
  if [[ ! -e $STATE/pg ]]; then
    mkdir -p "$STATE/pg"
    if [[ $EUID -eq 0 ]]; then
      id postgres >/dev/null 2>&1 || die "OS user 'postgres' is missing (it comes with the postgresql package)"
      chown postgres:postgres "$STATE/pg"
      if ! (cd / && runuser -u postgres -- test -w "$STATE/pg" -a -x "$STATE/pg"); then
        local alt
        alt=/var/lib/postgresql/interviews-$(printf %s "$REPO" | sha1sum | cut -c1-12)
        log "postgres user cannot reach $STATE/pg; keeping PostgreSQL data in $alt (symlinked)"
        rmdir "$STATE/pg"
        mkdir -p "$alt"
        chown postgres:postgres "$alt"
        ln -s "$alt" "$STATE/pg"
      fi
    fi
  fi
  PG_DIR=$(readlink -f "$STATE/pg")
  PG_DATA=$PG_DIR/data
  PG_LOG=$PG_DIR/log/postgresql.log
}

# Run a command as the postgres OS user (or as ourselves when not root).
# cd / avoids "could not change directory" noise; 9>&- keeps the server from
# inheriting our lock file descriptor.
as_pg() {
  if [[ $EUID -eq 0 ]]; then
    (cd / && runuser -u postgres -- "$@") 9>&-
  else
    (cd / && "$@") 9>&-
  fi
}

pg_running() { [[ -f $PG_DATA/PG_VERSION ]] && as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }

pg_write_config() {
  # Our settings live in a separate file, rewritten on every start so that
  # changes here (or a different PG_PORT) apply without re-initialising.
  cat >"$PG_DATA/interviews.conf" <<EOF
# Generated by scripts/services.sh on every start; do not edit.
listen_addresses = '127.0.0.1'
port = $PG_PORT
# TCP only: no clash with a system cluster's socket, no socket-path length limits.
unix_socket_directories = ''
max_connections = 200
# Sized for a 2-core / small-memory box.
shared_buffers = 256MB
effective_cache_size = 1GB
work_mem = 8MB
maintenance_work_mem = 128MB
wal_buffers = 16MB
max_wal_size = 2GB
checkpoint_completion_target = 0.9
random_page_cost = 1.1
max_worker_processes = 4
max_parallel_workers = 2
max_parallel_workers_per_gather = 1
# Durability stays ON: benchmarks against this server must be honest.
fsync = on
synchronous_commit = on
full_page_writes = on
timezone = 'UTC'
log_timezone = 'UTC'
log_line_prefix = '%m [%p] %q%u@%d '
EOF
  # Trust, but only for TCP from 127.0.0.1 (the server listens nowhere else).
  cat >"$PG_DATA/pg_hba.conf" <<'EOF'
# Generated by scripts/services.sh on every start; do not edit.
# TYPE  DATABASE  USER  ADDRESS        METHOD
host    all       all   127.0.0.1/32   trust
EOF
  grep -q "^include_if_exists = 'interviews.conf'" "$PG_DATA/postgresql.conf" ||
    echo "include_if_exists = 'interviews.conf'" >>"$PG_DATA/postgresql.conf"
  chown postgres:postgres "$PG_DATA/interviews.conf" "$PG_DATA/pg_hba.conf" 2>/dev/null || true
}

pg_bootstrap_roles() {
  local psql=("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres)
  # Superuser because the test suite creates and drops databases.
  if [[ -z $("${psql[@]}" -tAc "select 1 from pg_roles where rolname = '$DB_USER'") ]]; then
    log "creating role $DB_USER"
    "${psql[@]}" -c "create role $DB_USER login superuser password '$DB_PASSWORD'"
  fi
  local db
  for db in "${DATABASES[@]}"; do
    if [[ -z $("${psql[@]}" -tAc "select 1 from pg_database where datname = '$db'") ]]; then
      log "creating database $db"
      "${psql[@]}" -c "create database $db owner $DB_USER"
    fi
  done
}

pg_start() {
  pg_setup_paths install
  if pg_running; then
    if ! "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres; then
      die "PostgreSQL is running from $PG_DATA but not on port $PG_PORT; run '$0 stop-pg' first"
    fi
    log "PostgreSQL already running on 127.0.0.1:$PG_PORT (reusing)"
    pg_bootstrap_roles
    return
  fi
  if ! port_frees "$PG_PORT"; then
    die "port $PG_PORT is taken by another process (not our PostgreSQL); set PG_PORT to use another one"
  fi

  if [[ ! -f $PG_DATA/PG_VERSION ]]; then
    log "initialising PostgreSQL cluster in $PG_DATA"
    rm -rf "$PG_DATA" # a half-finished initdb leaves a directory initdb refuses to reuse
    mkdir -p "$PG_DATA"
    [[ $EUID -ne 0 ]] || chown postgres:postgres "$PG_DATA"
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  mkdir -p "$(dirname "$PG_LOG")"
  [[ $EUID -ne 0 ]] || chown -R postgres:postgres "$(dirname "$PG_LOG")"
  pg_write_config

  log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
  if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$TIMEOUT" start >/dev/null </dev/null 3>&- 9>&-; then
    log "last 50 lines of $PG_LOG:"
    tail -n 50 "$PG_LOG" >&2 || true
    die "PostgreSQL did not start"
  fi
  local deadline=$((SECONDS + TIMEOUT))
  until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres; do
    if ((SECONDS >= deadline)); then
      tail -n 50 "$PG_LOG" >&2 || true
      die "PostgreSQL not ready after ${TIMEOUT}s"
    fi
    sleep 0.5
  done
  pg_bootstrap_roles
  log "PostgreSQL ready; log: $PG_LOG"
}

pg_stop() {
  if pg_setup_paths && pg_running; then
    log "stopping PostgreSQL"
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null
  else
    log "PostgreSQL not running"
  fi
}

pg_status() {
  if pg_setup_paths && pg_running; then
    local port
    port=$(sed -n 's/^port = //p' "$PG_DATA/interviews.conf")
    echo "postgres: running (pid $(head -n1 "$PG_DATA/postmaster.pid"), 127.0.0.1:$port, data $PG_DATA, log $PG_LOG)" >&3
  else
    echo "postgres: stopped" >&3
    return 1
  fi
}

# --------------------------------------------------------------------------
# Kafka
# --------------------------------------------------------------------------

KSTATE=$STATE/kafka
KPROPS=$KSTATE/server.properties
KPID=$KSTATE/kafka.pid
KLOGDIR=$KSTATE/log
JAVA=

java_major() { "$1" -version 2>&1 | sed -n '1s/.*version "\([0-9]*\).*/\1/p'; }

# Kafka must run on Java 17 here (another, newer JDK is installed too and must
# not be picked up by accident), so never rely on PATH alone.
find_java17() {
  local c
  for c in ${JAVA17:-} /usr/lib/jvm/java-17-openjdk-amd64/bin/java \
    $(update-alternatives --list java 2>/dev/null | grep -- '-17' || true) \
    "$(command -v java || true)"; do
    if [[ -x $c && $(java_major "$c") == 17 ]]; then
      JAVA=$c
      return 0
    fi
  done
  return 1
}

kafka_ensure_java() {
  if ! find_java17; then
    apt_install openjdk-17-jre-headless
    find_java17 || die "no Java 17 found (tried JAVA17, /usr/lib/jvm/java-17-openjdk-amd64, update-alternatives, PATH)"
  fi
}

kafka_version() { sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_POM"; }

# Fetch the broker jars once. The stamp records the Kafka version and a hash of
# the POM, so a second run (or CI on a warm ~/.m2) does not invoke Maven at all,
# and bumping the version in the POM triggers a re-fetch.
kafka_ensure_dist() {
  local want
  want="kafka $(kafka_version) pom $(sha256sum "$KAFKA_POM" | cut -c1-16)"
  if [[ -f $DIST/STAMP && $(cat "$DIST/STAMP") == "$want" ]] && compgen -G "$DIST/libs/kafka_2.13-*.jar" >/dev/null; then
    return 0
  fi
  command -v mvn >/dev/null || apt_install maven
  log "fetching Apache Kafka $(kafka_version) and its dependencies with Maven into $DIST/libs ..."
  local tmp=$DIST/libs.tmp.$$
  rm -rf "$tmp"
  mkdir -p "$DIST"
  JAVA_HOME=$(dirname "$(dirname "$(readlink -f "$JAVA")")") \
    mvn -B -q -Dstyle.color=never -Dmaven.wagon.http.retryHandler.count=3 \
    -f "$KAFKA_POM" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" >"$DIST/maven.log" 2>&1 ||
    { cat "$DIST/maven.log" >&2; rm -rf "$tmp"; die "Maven could not fetch Kafka (output above, also in $DIST/maven.log)"; }
  rm -rf "$DIST/libs"
  mv "$tmp" "$DIST/libs"
  echo "$want" >"$DIST/STAMP"
}

# Our broker is running iff the pid file names a live process whose command
# line mentions our server.properties (guards against pid reuse).
kafka_running() {
  [[ -f $KPID ]] || return 1
  local pid
  pid=$(cat "$KPID")
  [[ -n $pid ]] && alive "$pid" && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF "$KPROPS"
}

# The pid of a broker of ours (java with our server.properties) that the pid file
# does not name, e.g. left by a start that was interrupted; nothing if none.
kafka_stray() {
  local dir pid
  for dir in /proc/[0-9]*; do
    pid=${dir#/proc/}
    [[ -f $KPID && $pid == "$(cat "$KPID")" ]] && continue
    if tr '\0' ' ' 2>/dev/null <"$dir/cmdline" | grep -qF "kafka.Kafka $KPROPS"; then
      echo "$pid"
      return
    fi
  done
}

kafka_write_config() {
  cat >"$KPROPS" <<EOF
# Generated by scripts/services.sh on every start; do not edit.
# Single-node KRaft: this process is both broker and controller (no ZooKeeper).
process.roles=broker,controller
node.id=1
# Static single-voter quorum: the voter's address comes from this file on
# every start, so changing KAFKA_PORT later does not strand formatted data.
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KSTATE/data
# 2-core box.
num.network.threads=3
num.io.threads=4
num.partitions=6
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Consumers in tests should not wait 3 s for the first rebalance.
group.initial.rebalance.delay.ms=0
# Our code creates its topics explicitly; a typo must not silently create one.
auto.create.topics.enable=false
# An event store: never delete data by age or size.
log.retention.ms=-1
log.retention.bytes=-1
EOF
}

kafka_tail_logs() {
  local f
  for f in "$KLOGDIR/server.log" "$KLOGDIR/kafka.out"; do
    if [[ -s $f ]]; then
      log "last 50 lines of $f:"
      tail -n 50 "$f" >&2
    fi
  done
}

# Ask the broker for real metadata (not just an open socket).
kafka_metadata_ok() {
  timeout 60 "$JAVA" -Xmx128m -XX:TieredStopAtLevel=1 -cp "$DIST/libs/*" \
    org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" --list \
    >/dev/null 2>&1 9>&-
}

kafka_start() {
  if kafka_running; then
    if port_open "$KAFKA_PORT"; then
      log "Kafka already running on 127.0.0.1:$KAFKA_PORT (pid $(cat "$KPID"), reusing)"
      return
    fi
    die "Kafka is running (pid $(cat "$KPID")) but not on port $KAFKA_PORT; run '$0 stop-kafka' first"
  fi
  local p
  # Two brokers on one data directory and one pair of ports: the second one dies.
  [[ -z $(kafka_stray) ]] || kafka_stop
  for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    port_frees "$p" || die "port $p is taken by another process (not our Kafka); set KAFKA_PORT / KAFKA_CONTROLLER_PORT"
  done

  kafka_ensure_java
  kafka_ensure_dist
  mkdir -p "$KSTATE/data" "$KLOGDIR"
  kafka_write_config

  if [[ ! -f $KSTATE/data/meta.properties ]]; then
    [[ -f $KSTATE/cluster-id ]] ||
      # A Kafka cluster id is 16 random bytes, URL-safe base64 without padding.
      head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$KSTATE/cluster-id"
    log "formatting Kafka storage in $KSTATE/data (cluster id $(cat "$KSTATE/cluster-id"))"
    "$JAVA" -Xmx256m -cp "$DIST/libs/*" kafka.tools.StorageTool format \
      --cluster-id "$(cat "$KSTATE/cluster-id")" --config "$KPROPS" --ignore-formatted \
      >"$KLOGDIR/format.log" 2>&1 9>&- ||
      { cat "$KLOGDIR/format.log" >&2; die "kafka storage format failed"; }
  fi

  log "starting Kafka $(kafka_version) (KRaft) on 127.0.0.1:$KAFKA_PORT with $JAVA"
  # setsid+nohup: the broker outlives this script and the caller's terminal;
  # 9>&- so it does not hold our lock forever; 3>&- so it does not hold the
  # stdout of `eval "$(scripts/services.sh)"` open (the caller would wait forever).
  (
    cd "$KSTATE"
    exec nohup setsid "$JAVA" -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
      -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
      -Dkafka.logs.dir="$KLOGDIR" -Dlog4j2.configurationFile="$KAFKA_LOG4J" \
      -cp "$DIST/libs/*" kafka.Kafka "$KPROPS" \
      >"$KLOGDIR/kafka.out" 2>&1 </dev/null 3>&- 9>&-
  ) &
  local pid=$!
  echo "$pid" >"$KPID"

  local deadline=$((SECONDS + TIMEOUT))
  until port_open "$KAFKA_PORT" && kafka_metadata_ok; do
    # Alive, not kafka_running: until the subshell has exec'd java, its command
    # line is this script's, and a busy machine can take a while to get there.
    # (Taking that for an exit once made a restart fail and a second start race
    # the first for the ports.)
    if ! alive "$pid"; then
      kafka_tail_logs
      port_holders "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"
      rm -f "$KPID"
      die "Kafka exited during startup"
    fi
    if ((SECONDS >= deadline)); then
      kafka_tail_logs
      kafka_stop
      die "Kafka did not answer on 127.0.0.1:$KAFKA_PORT within ${TIMEOUT}s"
    fi
    sleep 1
  done
  log "Kafka ready (pid $(cat "$KPID")); logs: $KLOGDIR/server.log"
}

kafka_stop() {
  kafka_stop_named
  local stray
  stray=$(kafka_stray)
  if [[ -n $stray ]]; then
    log "a broker of ours that the pid file did not name is running (pid $stray)"
    echo "$stray" >"$KPID"
    kafka_stop_named
  fi
}

# Stops the broker the pid file names.
kafka_stop_named() {
  if ! kafka_running; then
    rm -f "$KPID"
    log "Kafka not running"
    return
  fi
  local pid i
  pid=$(cat "$KPID")
  log "stopping Kafka (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  # A clean shutdown lets the next start skip log recovery; give it 30 s.
  for ((i = 0; i < 60; i++)); do
    alive "$pid" || break
    sleep 0.5
  done
  if alive "$pid"; then
    log "Kafka did not stop within 30s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      alive "$pid" || break
      sleep 0.2
    done
  fi
  rm -f "$KPID"
}

kafka_status() {
  if kafka_running; then
    local port
    port=$(sed -n 's|^advertised.listeners=PLAINTEXT://127.0.0.1:||p' "$KPROPS")
    echo "kafka: running (pid $(cat "$KPID"), 127.0.0.1:$port, $(kafka_version), log $KLOGDIR/server.log)" >&3
  else
    echo "kafka: stopped" >&3
    return 1
  fi
}

# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

usage() {
  sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

cmd=start pg=1 kafka=1
for arg in "$@"; do
  case $arg in
    start | stop | status | env) cmd=$arg ;;
    start-pg | stop-pg) cmd=${arg%-pg} kafka=0 ;;
    start-kafka | stop-kafka) cmd=${arg%-kafka} pg=0 ;;
    --pg-only) kafka=0 ;;
    --kafka-only) pg=0 ;;
    -h | --help | help) usage ;;
    *) log "unknown argument: $arg"; usage ;;
  esac
done
((pg || kafka)) || die "--pg-only and --kafka-only exclude each other"

print_exports() {
  ((pg)) && echo "export DATABASE_URL=postgresql://$DB_USER:$DB_PASSWORD@127.0.0.1:$PG_PORT/${DATABASES[0]}" >&3
  ((kafka)) && echo "export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT" >&3
  return 0
}

mkdir -p "$STATE"
# Serialise concurrent invocations (e.g. parallel make targets).
exec 9>"$STATE/.lock"
flock -w 300 9 || die "another scripts/services.sh is still running (lock $STATE/.lock)"

case $cmd in
  start)
    ((pg)) && pg_start
    ((kafka)) && kafka_start
    print_exports
    ;;
  stop)
    # Kafka first: it is the one with clients that may still be flushing.
    ((kafka)) && kafka_stop
    ((pg)) && pg_stop
    ;;
  status)
    rc=0
    if ((pg)); then pg_status || rc=3; fi
    if ((kafka)); then kafka_status || rc=3; fi
    exit $rc
    ;;
  env)
    print_exports
    ;;
esac
exit 0
