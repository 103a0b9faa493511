# The Loom operator image: the core plus the capabilities the operator process drives itself
# (Iceberg catalogs and Feast registries). Workloads (ingest, train, serve, ...) run in their own images.
#   docker build -t loom-operator:0.1.0 .
#   docker build --build-arg EXTRAS=lake -t loom-operator:lake-only .
FROM python:3.11.13-slim-bookworm

ARG EXTRAS="lake,features"

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml setup.cfg README.md ./
COPY operator/ operator/
# pip byte-compiles while installing, so nothing needs writing at run time (read-only root filesystem).
# The package installed is this checkout, within the dependency ranges of its setup.cfg, not one from PyPI.
# hadolint ignore=DL3013
RUN pip install ".${EXTRAS:+[$EXTRAS]}" \
    && rm -rf /src \
    && groupadd --system --gid 10001 loom \
    && useradd --system --uid 10001 --gid loom --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin loom

WORKDIR /
# Numeric, so the kubelet can verify runAsNonRoot.
USER 10001:10001
# Prometheus /metrics and Kopf's /healthz (see charts/loom/values.yaml).
EXPOSE 8080 8081
ENTRYPOINT ["loom"]
CMD ["run"]
