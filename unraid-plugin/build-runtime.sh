#!/bin/bash
# Build the plugin's Python runtime package, cacherr-python-<version>-x86_64-<build>.txz,
# from a python-build-standalone "install_only" (or install_only_stripped) build for
# x86_64-unknown-linux-gnu. The release workflow runs it; it needs the network only to
# download the tarball (or pass --tarball with a file you have).
#
#   build-runtime.sh --version 3.12.12 --url URL --sha256 HEX [--build 1] [--out dist]
#   build-runtime.sh --version 3.12.12 --tarball FILE --sha256 HEX [--build 1] [--out dist]
#
# Why this runtime: stock Unraid has no python3, and a Slackware python package is tied
# to one Slackware base (6.12 and 7.x differ). python-build-standalone's linux-gnu builds
# need only glibc >= 2.17 and link OpenSSL, SQLite, zlib, libffi and lzma statically, so
# one package serves Unraid 6.12 and 7.x alike. It is installed under
# /usr/local/lib/cacherr/python, never on PATH and never as /usr/bin/python3.
#
# What the recipe does:
#   1. verify the tarball's SHA256 (mandatory: the .plg pins the package's hash, and the
#      package is only as trustworthy as its input);
#   2. unpack its python/ tree to usr/local/lib/cacherr/python;
#   3. prune what cacherr never uses and what would cost RAM on the server: the test
#      suite, idlelib, tkinter, turtledemo, ensurepip, lib2to3, pip (never pip on the
#      server), and every __pycache__;
#   4. compile the standard library's bytecode with the runtime itself (reproducible:
#      unchecked-hash .pyc files, no mtimes);
#   5. pack it root-owned and reproducibly with pkgtar.py (mtime: $SOURCE_DATE_EPOCH or 0).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
version="" url="" tarball="" sha256="" build=1 out="$here/../dist"

usage() {
    sed -n '2,10p' "$0" >&2
    exit 2
}

while [ "$#" -gt 0 ]; do
    case "$1" in
        --version) version=$2; shift 2 ;;
        --url) url=$2; shift 2 ;;
        --tarball) tarball=$2; shift 2 ;;
        --sha256) sha256=$2; shift 2 ;;
        --build) build=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        *) usage ;;
    esac
done

[[ "$version" =~ ^3\.12\.[0-9]+$ ]] || { echo "build-runtime.sh: --version must be 3.12.N" >&2; exit 2; }
[[ "$sha256" =~ ^[0-9a-f]{64}$ ]] || { echo "build-runtime.sh: --sha256 must be 64 hex digits" >&2; exit 2; }
[[ "$build" =~ ^[0-9]+[a-z_]*$ ]] || { echo "build-runtime.sh: --build must be like 1 or 1_test" >&2; exit 2; }
if [ -z "$tarball" ] && [ -z "$url" ]; then
    usage
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

if [ -z "$tarball" ]; then
    tarball="$scratch/${url##*/}"
    curl --fail --location --silent --show-error --retry 3 --output "$tarball" "$url"
fi
echo "$sha256  $tarball" | sha256sum --check --quiet - \
    || { echo "build-runtime.sh: $tarball does not have SHA256 $sha256" >&2; exit 1; }

stage="$scratch/root"
prefix="$stage/usr/local/lib/cacherr"
mkdir -p "$prefix" "$scratch/unpack"
tar -xzf "$tarball" -C "$scratch/unpack"
[ -d "$scratch/unpack/python/lib/python3.12" ] \
    || { echo "build-runtime.sh: the tarball has no python/lib/python3.12: not a 3.12 install_only build" >&2; exit 1; }
mv "$scratch/unpack/python" "$prefix/python"

python="$prefix/python/bin/python3"
stdlib="$prefix/python/lib/python3.12"
rm -rf "$stdlib/test" "$stdlib/idlelib" "$stdlib/tkinter" "$stdlib/turtledemo" \
    "$stdlib/ensurepip" "$stdlib/lib2to3" "$stdlib/site-packages/pip" \
    "$stdlib"/site-packages/pip-*.dist-info
rm -f "$prefix"/python/bin/pip* "$prefix"/python/bin/idle* "$prefix"/python/bin/2to3* \
    "$prefix"/python/bin/pydoc*
find "$prefix/python" -name __pycache__ -type d -prune -exec rm -rf {} +
mkdir -p "$stdlib/site-packages"

"$python" -m compileall -q -j 0 --invalidation-mode unchecked-hash \
    -d /usr/local/lib/cacherr/python/lib/python3.12 "$stdlib" >/dev/null

mkdir -p "$stage/install"
cp "$here/install/slack-desc.python" "$stage/install/slack-desc"

package="$out/cacherr-python-$version-x86_64-$build.txz"
mkdir -p "$out"
python3 "$here/pkgtar.py" "$stage" "$package" --mtime "${SOURCE_DATE_EPOCH:-0}" >/dev/null
echo "$package"
