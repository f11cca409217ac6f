#!/bin/sh
# Container entrypoint. As root: make the config volume and the workspace usable
# by the agent user (cheaply: nothing is chowned when nothing needs it), strip
# CRLF from hook scripts, then become the agent user. As non-root: run directly.
# Always exec, so SIGTERM reaches the Python process (it is PID 1's program).
set -eu

AGENT_USER="${AGENT_USER:-agent}"
CONFIG_DIR="${WORKSPACE_CONFIG_PATH:-${CONFIGS_DIR:-/configs}}"
WORKSPACE_DIR="${WORKSPACE_DIR:-/workspace}"

if [ "$#" -eq 0 ]; then
    set -- runtime-adapter run
fi

log() {
    printf 'entrypoint: %s\n' "$*" >&2
}

if [ "$(id -u)" -ne 0 ]; then
    exec "$@"
fi

if ! uid="$(id -u "$AGENT_USER" 2>/dev/null)"; then
    log "user $AGENT_USER does not exist; running as root"
    exec "$@"
fi
gid="$(id -g "$AGENT_USER")"

# chown only when something under the directory is not the agent's already
fix_owner() {
    dir="$1"
    [ -d "$dir" ] || return 0
    stray="$(find "$dir" \( ! -user "$uid" -o ! -group "$gid" \) -print 2>/dev/null | head -n 1)"
    [ -n "$stray" ] || return 0
    if chown -R "$uid:$gid" "$dir" 2>/dev/null; then
        log "gave $dir to $AGENT_USER"
    else
        log "cannot chown $dir (read-only volume?); continuing"
    fi
}

# hook scripts written on Windows fail with "bad interpreter: /bin/sh^M". The agent
# owns these files and could plant symlinks among them, so the rewrite runs as the
# agent user: root never writes through a path the agent controls.
strip_crlf() {
    dir="$1"
    [ -d "$dir" ] || return 0
    # shellcheck disable=SC2016 # expanded by the inner shell
    setpriv --reuid="$uid" --regid="$gid" --init-groups -- sh -c '
        cr="$(printf "\r")"
        find "$1" -type f -name "*.sh" | while IFS= read -r file; do
            grep -q "$cr" "$file" 2>/dev/null || continue
            tmp="$(mktemp "$file.XXXXXX")" || continue
            if tr -d "\r" < "$file" > "$tmp" && chmod --reference="$file" "$tmp" \
                && mv -f "$tmp" "$file"; then
                printf "entrypoint: stripped CRLF from %s\n" "$file" >&2
            else
                rm -f "$tmp"
            fi
        done' sh "$dir" || log "could not strip CRLF under $dir; continuing"
}

fix_owner "$CONFIG_DIR"
fix_owner "$WORKSPACE_DIR"
strip_crlf "$CONFIG_DIR/.claude/hooks"
strip_crlf "$CONFIG_DIR/hooks"

HOME="$(getent passwd "$AGENT_USER" | cut -d: -f6)"
export HOME
exec setpriv --reuid="$uid" --regid="$gid" --init-groups -- "$@"
