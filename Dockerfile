# runtime-adapter with the claude-code template.
# Build: podman build --format docker -t runtime-adapter-claude-code .
# Where no registry is reachable, scripts/container-base makes a stand-in base and
# scripts/container-test passes it explicitly: --build-arg BASE_IMAGE=localhost/...
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

# no bytecode written at run time (the root may be read-only): the image carries it,
# compiled at build (compileall writes whatever this says); without it every start
# compiled every module it imported
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/runtime-adapter/venv \
    PATH=/opt/runtime-adapter/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# tini is PID 1: it reaps the orphans of the CLI's tools (Python as PID 1 never does)
# and forwards SIGTERM; setpriv (util-linux) drops to the runtime and agent users.
# Two users (DESIGN §13): 'runtime' holds the credentials, 'agent' runs the CLI.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 1000 agent \
    && useradd --uid 1000 --gid agent --create-home --shell /usr/sbin/nologin agent \
    && groupadd --gid 1001 runtime \
    && useradd --uid 1001 --gid runtime --create-home --shell /usr/sbin/nologin runtime \
    && mkdir -p /configs /workspace \
    && chown runtime:agent /configs && chmod 0750 /configs \
    && chown agent:agent /workspace

WORKDIR /opt/runtime-adapter

# dependencies first, exactly as locked (requirements.lock, made by scripts/lock with
# pip-tools: every version pinned, every file hash-checked), so a source change reuses
# this layer and two builds a month apart install the same thing; the system CA store,
# so a TLS-intercepting proxy the host trusts is trusted here too
COPY requirements.lock ./
RUN python -m venv "$VIRTUAL_ENV" \
    && pip install --cert /etc/ssl/certs/ca-certificates.crt --require-hashes --no-deps \
        -r requirements.lock \
    && python -m compileall -q -j 0 "$VIRTUAL_ENV/lib"

# then the code itself: the only layer a source change rebuilds; the copied sources go
# once installed (from this directory they would shadow the installed, compiled package)
COPY pyproject.toml README.md ./
COPY runtime_adapter/ runtime_adapter/
COPY templates/claude-code/ templates/claude-code/
RUN pip install --cert /etc/ssl/certs/ca-certificates.crt --no-deps --force-reinstall \
        . ./templates/claude-code \
    && python -m compileall -q -j 0 "$VIRTUAL_ENV/lib" \
    && rm -rf build ./*.egg-info runtime_adapter templates

COPY entrypoint.sh /usr/local/bin/entrypoint.sh

# the CLI path the runtime gives claude-agent-sdk: the bundled Claude Code CLI started
# as the agent user with every capability set empty and no_new_privs
RUN cli="$(python -c 'import claude_agent_sdk, pathlib; print(pathlib.Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude")')" \
    && mkdir -p /opt/runtime-adapter/bin \
    && printf '%s\n' '#!/bin/sh' 'HOME=/home/agent' 'export HOME' \
        "exec setpriv --reuid=agent --regid=agent --init-groups --inh-caps=-all --ambient-caps=-all --bounding-set=-all --no-new-privs -- $cli \"\$@\"" \
        > /opt/runtime-adapter/bin/claude-as-agent \
    && chmod 0755 /opt/runtime-adapter/bin/claude-as-agent

ENV ADAPTER_MODULE=claude_code_adapter:ClaudeCodeAdapter \
    AGENT_USER=agent \
    RUNTIME_USER=runtime \
    CLAUDE_CLI_PATH=/opt/runtime-adapter/bin/claude-as-agent \
    WORKSPACE_CONFIG_PATH=/configs \
    WORKSPACE_DIR=/workspace \
    PORT=8000

EXPOSE 8000

# /health answers 503 while a boot has failed: the container is then reported
# unhealthy, and keeps reporting the error to the platform until it is fixed
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/health', timeout=4)"]

ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/entrypoint.sh"]
CMD ["runtime-adapter", "run"]
