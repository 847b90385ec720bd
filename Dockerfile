# syntax=docker/dockerfile:1
# Production image: only runtime dependencies (no embedded PostgreSQL, no test tools), non-root.
# Production refuses to start without DATABASE_URL, SIA_TOTP_ENCRYPTION_KEY, SIA_EFIRMA_TRUST_DIR, SIA_PUBLIC_URL
# and SIA_SMTP_HOST.
# Migrations are their own step:  docker run --rm -e DATABASE_URL=... sia sia db upgrade
# Signing keys live in the data volume (/var/lib/sia/keys) or come from SIA_TOKEN_KEY_PEM / SIA_SEAL_KEY_PEM;
# production refuses to start without them:  docker run --rm -v sia-data:/var/lib/sia sia sia keys rotate
#                                             docker run --rm -v sia-data:/var/lib/sia sia sia keys rotate --sellos

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY app ./app
RUN /opt/venv/bin/pip install .

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SIA_ENV=production \
    SIA_HOST=0.0.0.0 \
    SIA_PORT=8000 \
    SIA_DATA_DIR=/var/lib/sia
RUN groupadd --system sia && useradd --system --gid sia --home-dir /srv/sia --no-create-home sia \
    && mkdir -p /var/lib/sia && chown sia:sia /var/lib/sia
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv/sia
COPY migrations ./migrations
COPY alembic.ini ./
USER sia
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/livez', timeout=2).status != 200)"]
# uvicorn shuts down gracefully on SIGTERM: it stops accepting, finishes in-flight requests, then exits.
STOPSIGNAL SIGTERM
CMD ["sia", "serve"]
