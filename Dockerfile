# payments-service container image.
#
#   docker build -t payments-service:local .
#
# Two stages on the same base image: `build` installs the hashed pins of
# requirements/runtime.lock (wheels only, so no compiler is ever needed) and then the package
# itself with --no-deps into /opt/venv; `runtime` copies only that virtualenv onto a fresh base
# and runs it as an unprivileged user. Nothing else from the build context (tests, docs, caches,
# the lock files) reaches the final image.
#
# Build arguments:
#   BASE_IMAGE      the Python base for both stages (default python:3.12-slim). Any Debian-like
#                   image with `python3 -m venv` works, e.g. one made locally with debootstrap.
#   PIP_FIND_LINKS  optional: where pip may find wheels (a URL or a path), for builds that cannot
#   PIP_NO_INDEX    reach the package index. pip reads both straight from the environment; unset
#                   (the default) they change nothing. scripts/docker-smoke.sh serves a host
#                   wheelhouse over loopback and passes
#                   --network host --build-arg PIP_FIND_LINKS=http://127.0.0.1:PORT/ --build-arg PIP_NO_INDEX=1
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build

ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_PROGRESS_BAR=off \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /build
RUN python3 -m venv /opt/venv

# Dependencies first: this layer is rebuilt only when the lock changes.
COPY requirements/runtime.lock requirements/runtime.lock
RUN /opt/venv/bin/pip install --no-cache-dir --only-binary=:all: --require-hashes \
        -r requirements/runtime.lock

COPY pyproject.toml README.md ./
COPY src/ src/
# The package alone (its dependencies are exactly the lock above), then drop the installers:
# the runtime needs neither pip nor setuptools.
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps . \
    && /opt/venv/bin/pip uninstall --yes pip setuptools \
    && /opt/venv/bin/python -c 'import payments_service.main, payments_service.healthcheck'


FROM ${BASE_IMAGE} AS runtime

LABEL org.opencontainers.image.title="payments-service" \
      org.opencontainers.image.description="gRPC payments service (payments.v1.PaymentService)" \
      org.opencontainers.image.licenses="MIT"

# A fixed numeric uid/gid so orchestrators can verify runAsNonRoot.
RUN groupadd --system --gid 10001 payments \
    && useradd --system --uid 10001 --gid payments --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin payments

COPY --from=build /opt/venv /opt/venv

# PAYMENTS_SIMULATION=off: a production caller must not be able to force outcomes through the
# `simulate` metadata test hook (the server's own default is on, for local runs and tests).
# PAYMENTS_STORE_URL is deliberately unset, so the image runs on memory:// (one process, nothing
# survives a restart) unless the deployment names a database (docker-compose.yml, Kubernetes).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PAYMENTS_GRPC_ADDRESS=[::]:50051 \
    PAYMENTS_METRICS_ADDRESS=0.0.0.0:9464 \
    PAYMENTS_HTTP_ADDRESS=0.0.0.0:8080 \
    PAYMENTS_LOG_FORMAT=json \
    PAYMENTS_SIMULATION=off

USER 10001:10001
EXPOSE 50051 8080 9464

# SIGTERM starts the graceful drain (health goes NOT_SERVING at once, calls are still served for
# PAYMENTS_SHUTDOWN_DRAIN_SECONDS, default 2 s, then in-flight calls get
# PAYMENTS_SHUTDOWN_GRACE_SECONDS, default 10 s); give `docker stop` more than both, e.g. -t 20.
STOPSIGNAL SIGTERM

# Asks grpc.health.v1 for payments.v1.PaymentService on 127.0.0.1:<port of
# PAYMENTS_GRPC_ADDRESS>: healthy only while the service is SERVING, not merely listening.
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
    CMD ["/opt/venv/bin/payments-healthcheck"]

ENTRYPOINT ["/opt/venv/bin/payments-server"]
