# runtime-adapter with the claude-code template.
# Build: docker build -t runtime-adapter-claude-code .
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# the unprivileged user the entrypoint drops to; setpriv comes with util-linux
RUN groupadd --gid 1000 agent \
    && useradd --uid 1000 --gid agent --create-home --shell /usr/sbin/nologin agent \
    && mkdir -p /configs /workspace \
    && chown agent:agent /configs /workspace

WORKDIR /opt/runtime-adapter

# dependencies first, from the metadata alone, so a source change reuses this layer
COPY pyproject.toml README.md ./
COPY runtime_adapter/_version.py runtime_adapter/_version.py
COPY templates/claude-code/pyproject.toml templates/claude-code/pyproject.toml
# local project paths: their dependencies' bounds live in the pyproject files
# hadolint ignore=DL3013
RUN mkdir -p templates/claude-code/claude_code_adapter \
    && touch templates/claude-code/claude_code_adapter/__init__.py \
    && pip install --no-cache-dir ".[claude-code]" ./templates/claude-code

# then the code itself
COPY runtime_adapter/ runtime_adapter/
COPY templates/claude-code/ templates/claude-code/
RUN pip install --no-cache-dir --no-deps --force-reinstall . ./templates/claude-code

COPY entrypoint.sh /usr/local/bin/entrypoint.sh

ENV ADAPTER_MODULE=claude_code_adapter:ClaudeCodeAdapter \
    WORKSPACE_CONFIG_PATH=/configs \
    WORKSPACE_DIR=/workspace \
    PORT=8000

EXPOSE 8000

# /health answers 503 while a boot has failed: the container is then reported
# unhealthy, and keeps reporting the error to the platform until it is fixed
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/health', timeout=4)"]

ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]
CMD ["runtime-adapter", "run"]
