# poracle-bot: checks and restarts PoracleJS servers from Discord. See README.md.
# The base image is pinned to one Python release and Debian release, and requirements.lock pins every
# package by version and hash (docker/update-lock makes it): a rebuild gives the same runtime.

FROM python:3.12.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
# A mirror of PyPI, for a machine that cannot reach PyPI itself: the lock's hashes still pin every file.
ARG PIP_INDEX_URL
WORKDIR /src
# One virtual environment: the runtime stage copies this directory and nothing of the build.
# The locked packages come first, in their own layer: a change to the bot alone does not download them again.
COPY requirements.lock ./
RUN python3 -m venv /venv \
    && /venv/bin/pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY bot ./bot
# The bot: built by the locked setuptools, nothing fetched; `pip check` fails if the lock lacks a dependency.
RUN /venv/bin/pip install --no-cache-dir --no-deps --no-build-isolation --no-index . \
    && /venv/bin/pip check

FROM python:3.12.11-slim-bookworm
# HOME: setpriv keeps root's environment, and asyncssh looks into ~/.ssh when it connects: under root's
# HOME (/root, mode 0700) that fails with "Permission denied" before a packet is sent. /app is the bot's own.
ENV PATH=/venv/bin:$PATH \
    HOME=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The bot runs as this unprivileged user; the entrypoint starts as root only to prepare the SSH keys.
RUN groupadd --gid 1000 poracle \
    && useradd --uid 1000 --gid poracle --home-dir /app --no-create-home --shell /usr/sbin/nologin poracle \
    && mkdir -p /app/data \
    && chown poracle:poracle /app /app/data
COPY --from=build /venv /venv
COPY docker/entrypoint.sh /usr/local/bin/docker-entrypoint
WORKDIR /app
# known_hosts (pinned server keys), the database and the heartbeat file live here.
VOLUME ["/app/data"]
# Healthy while the bot's monitor rounds run (see `heartbeat_max_age` in bot/cli/main.py); Discord being
# away does not make it unhealthy (restarting would not bring Discord back), the status's words say so. Runs as the bot's user: it only reads /app/data/heartbeat.json.
# start-period: logging in and the first round of checks; retries: one gateway reconnect is not an outage.
HEALTHCHECK --interval=60s --timeout=10s --start-period=120s --retries=3 \
    CMD ["setpriv", "--reuid=poracle", "--regid=poracle", "--clear-groups", "poracle-bot", "healthcheck"]
ENTRYPOINT ["docker-entrypoint"]
CMD ["run"]
