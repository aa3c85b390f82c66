# syntax=docker/dockerfile:1
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system gateway && useradd --system --gid gateway --home-dir /app gateway

# Installed as a package and the sources removed: the migrations and the assets of /docs
# (Swagger UI, served by the gateway itself, no CDN) ship inside it.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY adapters ./adapters
COPY schemas ./schemas
RUN pip install . && rm -rf /src

WORKDIR /app
RUN mkdir -p /app/var && chown gateway:gateway /app/var

USER gateway
EXPOSE 8000
# The first admin key (README, "Container"): mount a file holding a key you chose and set
# GATEWAY_BOOTSTRAP_ADMIN_KEY_FILE=/run/secrets/<file>; while no admin is active one is created
# with that key. Or: docker exec <container> crc-gateway clients create --name ... --role admin
# Orchestrators' probes: /health/live and /health/ready, both without a credential.
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/live')"
CMD ["sh", "-c", "crc-gateway migrate && exec crc-gateway serve --host 0.0.0.0 --port 8000"]
