"""The real Mover Tuning `age_mover` (../shared/vendor/mover-tuning, unmodified) run in a
mount namespace over an Unraid-like tree, with the list cacherr writes: a fully cached
folder (one folder line), a file beside an unlisted one, a copy in progress (only its
temporary file exists), and entries from before cacherr refused names whose characters
Mover Tuning's shell would run or choke on. It moves what is not cacherr's and nothing
that is, and no list line runs a command (issue 11, points 7 and 8)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import require_root, require_tool

REPO = Path(__file__).resolve().parents[2]
VENDOR = REPO.parent / "shared" / "vendor" / "mover-tuning"
PLUGIN = "usr/local/emhttp/plugins/ca.mover.tuning"

CACHED = [  # cacherr's: in the list
    "Movies/Whole (2001)/Whole (2001).mkv",
    "Movies/Whole (2001)/Whole (2001).en.srt",
    "Movies/Half (2002)/Half (2002).mkv",
    "Movies/Legacy/`touch TICKED`.mkv",
    "Movies/Legacy/$(touch PWNED).mkv",
    'Movies/Legacy/say "hi".mkv',
]
# Listed, but only its temporary file exists yet; its folder holds an unlisted file, so
# only the share's pattern line protects it.
IN_PROGRESS = "Movies/Half (2002)/Half (2002).en.srt"
NOT_CACHED = [  # not cacherr's: the mover takes them (and keeps the lines above files)
    "Movies/Half (2002)/Half (2002).nfo",
    "Movies/Legacy/unlisted.mkv",
    "Movies/Unlisted (2004)/Unlisted (2004).mkv",
]

# The namespace: RAM file systems over /mnt (a pool, the array's user0), /boot, /run,
# /var/local and an overlay on /usr/local, the plugin's files in place; then cacherr
# writes its list (with its own code) and age_mover runs once.
SCRIPT = r"""
set -eu
work="$1"; vendor="$2"; repo="$3"; python="$4"
for m in /mnt /boot /run /var/local "$work/ns"; do mount -t tmpfs cacherr-mt "$m"; done
mkdir -p /mnt/cache /mnt/user0 /mnt/disk1 "$work/ns/upper" "$work/ns/work" "$work/ns/bin"
mount -t tmpfs cacherr-pool /mnt/cache
mount -t tmpfs cacherr-user0 /mnt/user0
mount -t overlay overlay -o "lowerdir=/usr/local,upperdir=$work/ns/upper,workdir=$work/ns/work" /usr/local
mkdir -p /usr/local/emhttp/plugins /usr/local/emhttp/state /var/local/log
cp -a "$vendor/usr/local/emhttp/plugins/ca.mover.tuning" /usr/local/emhttp/plugins/
mkdir -p /boot/config/shares /boot/config/pools /boot/config/plugins/ca.mover.tuning
echo 'shareCacheEnabled="yes"' > /boot/config/share.cfg
printf 'shareUseCache="yes"\nshareCachePool="cache"\nshareCachePool2=""\n' > /boot/config/shares/Movies.cfg
sed -e 's/^filelistf=.*/filelistf="yes"/' -e 's|^filelistv=.*|filelistv="/boot/config/plugins/cacherr/mover-exclude.txt"|' \
    -e 's/^notify=.*/notify="no"/' -e 's|^loggingFolder=.*|loggingFolder="/var/local/log"|' \
    -e 's/^movingThreshold=.*/movingThreshold="0"/' -e 's/^freeingThreshold=.*/freeingThreshold="0"/' \
    "$vendor/usr/local/emhttp/plugins/ca.mover.tuning/default.cfg" > /boot/config/plugins/ca.mover.tuning/ca.mover.tuning.cfg
ln -s "$(command -v gawk)" "$work/ns/bin/awk"
cd /var/local
PYTHONPATH="$repo" "$python" -m tests.integration.mover_tuning_list "$work/files.json"
PATH="$work/ns/bin:$PATH" /usr/local/emhttp/plugins/ca.mover.tuning/age_mover start > "$work/age_mover.out" 2>&1 || echo "age_mover exit $?" >> "$work/age_mover.out"
cp -r /var/local/log "$work/log" 2>/dev/null || true
cd /
find /mnt /var/local /boot /usr/local/emhttp -print > "$work/after.txt"
for name in TICKED PWNED; do find / -xdev -name "$name" >> "$work/commands-run.txt" 2>/dev/null || true; done
"""


def test_mover_tuning_moves_what_is_not_cacherrs_and_nothing_that_is(tmp_path):
    """Also: the list holds the folder line, the pattern and the rewritten legacy lines."""
    require_root()
    for tool in ("unshare", "gawk", "rsync", "mountpoint", "findmnt"):
        require_tool(tool)
    assert (VENDOR / PLUGIN / "age_mover").is_file(), VENDOR
    (tmp_path / "ns").mkdir()
    (tmp_path / "files.json").write_text(json.dumps({
        "cached": CACHED, "in_progress": IN_PROGRESS, "not_cached": NOT_CACHED}))  # fmt: skip
    script = tmp_path / "namespace.sh"
    script.write_text(SCRIPT)
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "bash", str(script), str(tmp_path),
         str(VENDOR), str(REPO), sys.executable],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    log = (tmp_path / "age_mover.out").read_text() if (tmp_path / "age_mover.out").exists() else ""
    assert done.returncode == 0, done.stderr + log
    after = set((tmp_path / "after.txt").read_text().splitlines())
    for rel in NOT_CACHED:  # proves the mover ran, and the list did not break its find
        assert f"/mnt/user0/{rel}" in after and f"/mnt/cache/{rel}" not in after, (rel, log)
    for rel in CACHED:
        assert f"/mnt/cache/{rel}" in after and f"/mnt/user0/{rel}" not in after, (rel, log)
    temporary = IN_PROGRESS.rpartition("/")
    temporary = f"{temporary[0]}/.{temporary[2]}.cacherr-tmp"
    assert f"/mnt/cache/{temporary}" in after and f"/mnt/user0/{temporary}" not in after
    assert (tmp_path / "commands-run.txt").read_text() == "", "a list line ran a command"
    listed = done.stdout.splitlines()
    assert "/mnt/cache/Movies/Whole (2001)/" in listed and "/mnt/cache/Movies/*.cacherr-tmp" in listed
    assert "/mnt/cache/Movies/Legacy/*touch TICKED*.mkv" in listed
    assert not [line for line in listed if set(line) & set('`$"\\')]
