# One image for every service of the platform; docker-compose.yml picks the
# command (`interviewctl serve interviews|projections|notifications|scheduler`,
# `interviewctl relay`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY services ./services
COPY schemas ./schemas
COPY asyncapi.yaml ./
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app app \
    && mkdir -p /data && chown app /data

USER app
EXPOSE 8001 8002 8003 9465
CMD ["interviewctl", "--help"]
