#!/bin/sh
# /usr/local/sbin/cacherr: run cacherr with the plugin's own Python runtime.
#
# -I (isolated mode) ignores every PYTHON* variable and the user site, so nothing on the
# server can change which code runs; the app package's cacherr.pth puts its private
# site-packages on the path. The prefix is found relative to this file, so an extracted
# package tree can be tried anywhere (CACHERR_PREFIX overrides it).
here=$(dirname "$0")
prefix=${CACHERR_PREFIX:-$here/../lib/cacherr}
python="$prefix/python/bin/python3"
if [ ! -x "$python" ]; then
    echo "cacherr: the Python runtime is missing ($python); reinstall the cacherr plugin" >&2
    exit 1
fi
exec "$python" -I -m cacherr "$@"
