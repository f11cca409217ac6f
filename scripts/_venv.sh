# shellcheck shell=sh
# Sourced by the scripts: make .venv hold this checkout's package and tools.
# Re-installs only when pyproject.toml changed since the last install.
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
stamp="$VENV/.installed-$(cat pyproject.toml templates/claude-code/pyproject.toml | cksum | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV with $("$PYTHON" --version)" >&2
    "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$stamp" ]; then
    echo "installing runtime-adapter[dev,claude-code] into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e '.[dev,claude-code]' -e templates/claude-code
    rm -f "$VENV"/.installed-*
    touch "$stamp"
fi
