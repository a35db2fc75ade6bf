#!/bin/sh
# The cacherr image's entry point and its `cacherr` command: one script, two names.
#
# Who cacherr runs as. The container starts as root, then drops to PUID:PGID (Unraid's
# nobody:users, 99:100, by default) with setpriv, keeping four capabilities as *ambient*
# capabilities: CHOWN, FOWNER, FSETID and DAC_OVERRIDE. So:
#   - files cacherr creates itself (its state in /config, folders, lists) belong to
#     PUID:PGID, as Unraid users expect in appdata;
#   - a copied media file still gets its original owner, mode and times (that needs
#     CHOWN/FOWNER), and cacherr can read and replace files whatever their owner
#     (DAC_OVERRIDE), like Unraid's own mover, which runs as root.
# Docker's default capability set includes all four. PUID=0 runs as plain root instead.
#
# UMASK (default 022) applies to everything cacherr creates.
#
# As /usr/local/bin/cacherr-entrypoint (the image's ENTRYPOINT): arguments are a cacherr
# command (`run`, `plan`, ...) or options, passed to cacherr; anything else is executed
# as is (e.g. `sh`), as PUID:PGID too.
#
# As /usr/local/bin/cacherr (a link to this file, the only `cacherr` on PATH): a command a
# user runs with `docker exec` starts as root, yet what it writes (rules.yaml, the 0600
# .env, the state database and its -wal and -shm files, api.sock) must stay the service's.
# So as root it drops to PUID:PGID with UMASK too, exactly as the service did, then runs
# cacherr from the image's venv. `docker exec -e PUID=0 ...` keeps root, on purpose.
set -eu

case "${0##*/}" in
    cacherr) me=cacherr ;;
    *) me=entrypoint ;;
esac

PUID=${PUID:-99}
PGID=${PGID:-100}
UMASK=${UMASK:-022}

# A user or group id as setpriv and chown take it: decimal, 0 to 4294967294. Not a name,
# and not 4294967295, the (uid_t)-1 that setresuid() reads as "leave as it is" (root).
check_id() {
    case "$2" in
        "" | *[!0-9]* | 0?*) valid=no ;;
        *) if [ "${#2}" -le 10 ] && [ "$2" -le 4294967294 ]; then valid=yes; else valid=no; fi ;;
    esac
    if [ "$valid" = no ]; then
        echo "$me: $1 must be a number from 0 to 4294967294, without leading zeros" \
             "(got '$2'); $3; nothing was done" >&2
        exit 2
    fi
}
check_id PUID "$PUID" "it is the user cacherr runs as (Unraid: 99, nobody; 0: root)"
check_id PGID "$PGID" "it is the group cacherr runs as (Unraid: 100, users)"
case "$UMASK" in
    [0-7][0-7][0-7] | [0-7][0-7][0-7][0-7]) ;;
    *) echo "$me: UMASK must be octal, e.g. 022 (got '$UMASK'); nothing was done" >&2; exit 2 ;;
esac
umask "$UMASK"

# as_puid [exec] COMMAND...: run COMMAND (with `exec`: become it) as PUID:PGID, keeping
# the four capabilities as ambient ones. Not root, or PUID=0: as we are.
as_puid() {
    become=
    if [ "$1" = exec ]; then become=yes; shift; fi
    if [ "$(id -u)" != 0 ] || [ "$PUID" = 0 ]; then
        ${become:+exec} "$@"
    else
        ${become:+exec} setpriv --reuid="$PUID" --regid="$PGID" --clear-groups \
            --inh-caps=-all,+chown,+fowner,+fsetid,+dac_override \
            --ambient-caps=-all,+chown,+fowner,+fsetid,+dac_override \
            -- "$@"
    fi
}

if [ "$me" = cacherr ]; then
    # -P: the current folder is not put on the module path (a `cacherr/` or `yaml.py`
    # where the user stands must not be imported).
    as_puid exec "${VIRTUAL_ENV:-/opt/cacherr/venv}/bin/python" -P -m cacherr "$@"
fi

if [ "$#" -eq 0 ]; then
    set -- run
fi
case "$1" in
    run | plan | validate | ls | evict | doctor | init | schema | healthcheck | demo | -*)
        set -- cacherr "$@"
        ;;
esac

# A fresh /config volume is created root-owned: hand it to PUID:PGID (only the folder
# itself, never what the user put inside).
config_dir=$(dirname "${CACHERR_CONFIG:-/config/rules.yaml}")
if [ "$(id -u)" = 0 ] && [ -d "$config_dir" ] && [ "$(stat -c %u "$config_dir")" = 0 ]; then
    chown "$PUID:$PGID" "$config_dir" || true
fi

# First start: no rules file yet. Write the starter one (dry_run: true; Plex's address
# from $PLEX_URL, the token from $PLEX_TOKEN) as PUID:PGID; `run --wait-for-rules` then
# stays up, healthy but idle, until it is valid.
if [ "$#" -ge 2 ] && [ "$1" = cacherr ] && [ "$2" = run ] && [ -n "${CACHERR_CONFIG:-}" ] \
        && [ ! -e "$CACHERR_CONFIG" ]; then
    echo "entrypoint: no rules file at $CACHERR_CONFIG: writing a starter one" >&2
    if as_puid cacherr init; then
        echo "entrypoint: edit $CACHERR_CONFIG (paths, plex; keep dry_run: true until" \
             "'cacherr plan' looks right); it is picked up when saved" >&2
    else
        echo "entrypoint: could not write $CACHERR_CONFIG; see above" >&2
    fi
fi

as_puid exec "$@"
