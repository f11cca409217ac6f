#!/bin/sh
# Container entrypoint. As root (DESIGN §13): the config volume becomes the runtime
# user's (readable by the agent's group; the token files the runtime's alone; the
# sessions directory shared), the workspace the agent's, hook scripts lose their CRLF,
# then the runtime starts as the runtime user holding only SETUID, SETGID, SETPCAP
# and KILL (to start the CLI as the agent user with no capability, and to stop it).
# As non-root: run directly, one user. Always exec, so SIGTERM reaches the Python
# process (it is PID 1's program).
set -eu

AGENT_USER="${AGENT_USER:-agent}"
RUNTIME_USER="${RUNTIME_USER:-runtime}"
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
if ! ruid="$(id -u "$RUNTIME_USER" 2>/dev/null)"; then
    log "user $RUNTIME_USER does not exist; the runtime runs as $AGENT_USER"
    ruid="$uid"
fi
rgid="$(id -g "$ruid")"

# chown only when something under the directory is not its owner's already
# (prune: a path left out)
# (sh has no locals: these names are fix_owner's own)
fix_owner() {
    fo_dir="$1" fo_owner="$2" fo_group="$3" fo_prune="${4:-/nonexistent}"
    [ -d "$fo_dir" ] || return 0
    stray="$(find "$fo_dir" -path "$fo_prune" -prune -o \
        \( ! -user "$fo_owner" -o ! -group "$fo_group" \) -print 2>/dev/null | head -n 1)"
    [ -n "$stray" ] || return 0
    # -h: a symlink the agent planted is changed itself, never what it points at
    if find "$fo_dir" -path "$fo_prune" -prune -o -exec chown -h "$fo_owner:$fo_group" {} + \
        2>/dev/null; then
        log "gave $fo_dir to $(id -un "$fo_owner")"
    else
        log "cannot chown $fo_dir (read-only volume?); continuing"
    fi
}

# the config volume: the runtime's; the agent reads what the template put there, never
# the token files; the sessions directory is the agent's, shared with the runtime
secure_config() {
    dir="$1"
    [ -d "$dir" ] && [ -w "$dir" ] || return 0
    fix_owner "$dir" "$ruid" "$gid" "$dir/.claude-code"
    # only what needs it (chmod follows a symlink: none is touched)
    find "$dir" \( -path "$dir/.claude-code" -o -path "$dir/.a2a" \) -prune -o ! -type l \
        \( -perm /o=rwx -o -perm /g=w -o ! -perm -g=r -o ! -perm -u=rw \) \
        -exec chmod u+rwX,g+rX,g-w,o-rwx {} + 2>/dev/null || true
    for secret in .auth_token .platform_inbound_secret .a2a_cursor; do
        if [ -f "$dir/$secret" ] && [ ! -L "$dir/$secret" ]; then
            chown "$ruid:$rgid" "$dir/$secret" && chmod 0600 "$dir/$secret"
        fi
    done
    # the task database holds every caller's prompts and webhook credentials: the
    # runtime's alone
    if [ -d "$dir/.a2a" ] && [ ! -L "$dir/.a2a" ]; then
        chown -h -R "$ruid:$rgid" "$dir/.a2a" && chmod 0700 "$dir/.a2a"
        find "$dir/.a2a" -type f -exec chmod 0600 {} + 2>/dev/null || true
    fi
    if [ -L "$dir/.claude-code" ]; then
        log "$dir/.claude-code is a symlink; leaving it"
        return 0
    fi
    mkdir -p "$dir/.claude-code"
    fix_owner "$dir/.claude-code" "$uid" "$rgid"
    [ "$(stat -c %a "$dir/.claude-code")" = 2770 ] || chmod 2770 "$dir/.claude-code" 2>/dev/null || true
}

# the secrets directory, when the runtime reads one: the runtime's alone
secure_secrets() {
    dir="$1"
    [ -n "$dir" ] && [ -d "$dir" ] || return 0
    if chown -R "$ruid:$rgid" "$dir" 2>/dev/null \
        && find "$dir" ! -type l -perm /go=rwx -exec chmod go-rwx {} + 2>/dev/null; then
        return 0
    fi
    log "cannot make $dir the runtime's alone (read-only mount?): mount it with mode 0400 and owner $RUNTIME_USER"
}

# hook scripts written on Windows fail with "bad interpreter: /bin/sh^M". The rewrite
# runs as the volume's owner (the runtime user): root never writes through a path
# another user controls.
strip_crlf() {
    dir="$1"
    [ -d "$dir" ] || return 0
    # shellcheck disable=SC2016 # expanded by the inner shell
    setpriv --reuid="$2" --regid="$3" --init-groups -- sh -c '
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

# a container that drops SETUID/SETGID cannot change users: one user then (the runtime
# says at warning level which protection is missing, and doctor shows it)
if ! setpriv --reuid="$uid" --regid="$gid" --clear-groups true 2>/dev/null; then
    log "cannot change users (no SETUID/SETGID capability): running as $(id -un)"
    exec "$@"
fi

secure_config "$CONFIG_DIR"
secure_secrets "${RUNTIME_SECRETS_DIR:-}"
fix_owner "$WORKSPACE_DIR" "$uid" "$gid"
strip_crlf "$CONFIG_DIR/.claude/hooks" "$ruid" "$gid"
strip_crlf "$CONFIG_DIR/hooks" "$ruid" "$gid"

if [ "$ruid" = "$uid" ]; then
    HOME="$(getent passwd "$AGENT_USER" | cut -d: -f6)"
    export HOME
    exec setpriv --reuid="$uid" --regid="$gid" --init-groups -- "$@"
fi
HOME="$(getent passwd "$RUNTIME_USER" | cut -d: -f6)"
export HOME
caps="-all,+setuid,+setgid,+setpcap,+kill"
exec setpriv --reuid="$ruid" --regid="$rgid" --init-groups \
    --inh-caps="$caps" --ambient-caps="$caps" --bounding-set="$caps" -- "$@"
