# One image for every node and for the one-off `commandpost migrate` (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1

COPY pyproject.toml README.md /tmp/src/
COPY geo /tmp/src/geo
COPY agencies /tmp/src/agencies
COPY coordinator /tmp/src/coordinator
RUN pip install --no-cache-dir '/tmp/src[postgres,redis]' \
    && rm -rf /tmp/src \
    && useradd --system --uid 10001 --user-group --no-create-home --home-dir /data commandpost \
    && mkdir -p /data && chown commandpost:commandpost /data

USER commandpost
WORKDIR /data
ENV CP_HOST=0.0.0.0 CP_PORT=8000 CP_DATA_DIR=/data
EXPOSE 8000
CMD ["commandpost", "serve"]
