# The serve image: MLServer 1.7.1 and Loom's recommender runtime (components/serve), the environment of
# .venv-serve (`make venv-serve`), fully pinned by requirements/serve.txt. Seldon Core 2's Server and
# KServe's ServingRuntime start `mlserver start <repository>` in it (builders/serving.py), which imports
# the runtime as serve.runtime.Recommender from PYTHONPATH (MLServer's inference workers are processes
# of their own, so the path is in the environment). Run on its own, it serves the model repository in
# $LOOM_WORKLOAD_FILES the way the local executor runs components/serve.
#   docker build -f docker/serve.Dockerfile -t loom-serve:0.1.0 .
# The build context is the repository; docker/serve.Dockerfile.dockerignore lets in only what is copied.
FROM python:3.11.13-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/opt/loom/components

COPY requirements/serve.txt /tmp/requirements-serve.txt
# pip byte-compiles while installing, so nothing needs writing under site-packages at run time.
RUN pip install --requirement /tmp/requirements-serve.txt \
    && rm /tmp/requirements-serve.txt \
    && groupadd --system --gid 10001 loom \
    && useradd --system --uid 10001 --gid loom --create-home --home-dir /home/loom \
       --shell /usr/sbin/nologin loom

COPY components/serve/ /opt/loom/components/serve/

# MLServer writes its metrics scratch directory under the working directory.
WORKDIR /home/loom
# Numeric, so the kubelet can verify runAsNonRoot.
USER 10001:10001
# MLServer's HTTP, gRPC and metrics ports (MLSERVER_HTTP_PORT, MLSERVER_GRPC_PORT, MLSERVER_METRICS_PORT).
EXPOSE 8080 8081 8082
CMD ["python", "/opt/loom/components/serve"]
