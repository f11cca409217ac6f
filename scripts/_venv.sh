# shellcheck shell=sh
# Sourced by the scripts: make .venv hold this checkout's package and tools.
# Re-installs only when pyproject.toml changed since the last install.
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
EXTRAS="${EXTRAS:-dev,claude-code}"
stamp="$VENV/.installed-$EXTRAS-$(cat pyproject.toml templates/claude-code/pyproject.toml | cksum | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV with $("$PYTHON" --version)" >&2
    "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$stamp" ]; then
    echo "installing runtime-adapter[$EXTRAS] into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e ".[$EXTRAS]" -e templates/claude-code
    rm -f "$VENV"/.installed-*
    touch "$stamp"
fi
