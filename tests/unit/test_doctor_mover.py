"""doctor's mover findings, from config files shaped like the real ones: Mover Tuning's
settings start from its shipped default.cfg (../shared/vendor/mover-tuning) with the keys
under test changed, share overrides as its share page saves them, Unraid's var.ini,
share.cfg and the mover.cron files update_cron reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cacherr.config.model import HostConfig
from cacherr.cycle.moverlist import BEGIN, END
from cacherr.doctor.mover_checks import check_mover
from cacherr.host.unraid import mover_tuning_overrides, read_mover_tuning_file

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CFG = (REPO.parent / "shared/vendor/mover-tuning/usr/local/emhttp/plugins/"
               "ca.mover.tuning/default.cfg")
LIST = "/mnt/cache/appdata/cacherr/mover-exclude.txt"
NEW, OLD = (7, 2, 1), (7, 1, 4)
STOCK_CRON = "# Generated mover schedule:\n0 3 * * * /usr/local/sbin/mover start |& logger -t move\n\n"
FORCED_CRON = "# Generated schedule for forced move:\n30 3 * * * /usr/local/sbin/mover start |& logger -t move\n\n"


class Unraid:
    """A fake Unraid's config folders (flash and emhttpd's state)."""

    def __init__(self, root: Path):
        self.host = HostConfig(root / "run/mover.pid", root / "emhttp", root / "boot")
        self.tuning_dir = root / "boot/plugins/ca.mover.tuning"
        for folder in (self.host.emhttp_dir, self.tuning_dir, root / "boot/plugins/dynamix"):
            folder.mkdir(parents=True, exist_ok=True)
        self.var_ini(schedule="")
        self.tuning(filelistf="yes", filelistv=LIST)

    def var_ini(self, schedule: str | None, version: str = "7.2.1") -> None:
        lines = [f'version="{version}"', 'fsState="Started"', 'mdResyncPos="0"',
                 'shareCacheEnabled="yes"', 'shareMoverLogging="no"']
        if schedule is not None:
            lines.append(f'shareMoverSchedule="{schedule}"')
        (self.host.emhttp_dir / "var.ini").write_text("\n".join(lines) + "\n")

    def tuning(self, newline: str = "\n", **changes: str) -> None:
        """ca.mover.tuning.cfg: the shipped defaults with `changes` (as its page saves them)."""
        text = DEFAULT_CFG.read_text()
        for key, value in changes.items():
            line = f'{key}="{value}"'
            text, found = re.subn(rf"^{key}=.*$", line, text, flags=re.M)
            if not found:
                text += line + "\n"
        (self.tuning_dir / "ca.mover.tuning.cfg").write_text(text.replace("\n", newline))

    def override(self, share: str, **changes: str) -> Path:
        """shareOverrideConfig/<share>.cfg as the share's Mover Tuning tab saves it."""
        settings = {"moverOverride": "yes", "movingThreshold": "0", "freeingThreshold": "0",
                    "age": "no", "daysold": "-1", "ctime": "no", "sizef": "no", "sizeinM": "1",
                    "sparsenessf": "no", "sparsenessv": "1", "filelistf": "no", "filelistv": "",
                    "filetypesf": "no", "filetypesv": "", "ignoreHidden": "no",
                    "omovercfg": "no", "omoverthresh": "", **changes}
        path = self.tuning_dir / "shareOverrideConfig" / f"{share}.cfg"
        path.parent.mkdir(exist_ok=True)
        path.write_text("".join(f'{key}="{value}"\n' for key, value in settings.items()))
        return path

    def cron(self, owner: str, text: str) -> None:
        (self.host.boot_config_dir / "plugins" / owner / "mover.cron").write_text(text)

    def findings(self, version=NEW, shares=("Movies", "TV"), exclude=LIST):
        return check_mover(self.host, version, Path(exclude), list(shares))


@pytest.fixture
def unraid(tmp_path):
    return Unraid(tmp_path)


def _lines(findings, level: str) -> list[str]:
    return [f"{f.message} | {f.fix}" for f in findings if f.level == level]


def test_a_well_set_7_2_1_host_leaves_only_the_move_button_to_mind(unraid):
    findings = unraid.findings()
    assert _lines(findings, "problem") == []
    assert [f.message for f in findings if f.level == "ok"] == [
        f"Mover Tuning reads {LIST}", "Unraid's own mover schedule is disabled"]
    (button,) = _lines(findings, "warning")
    assert "Main page's Move button runs the stock mover" in button
    assert "Mover Tuning's own Move now" in button and "a share's Mover Tuning 'Move Now'" in button


def test_before_7_2_1_the_move_button_follows_the_list_unless_movenow_is_no(unraid):
    unraid.var_ini(schedule="0 3 * * *", version="7.1.4")  # Mover Tuning runs this schedule
    assert _lines(unraid.findings(OLD), "warning") == []
    unraid.tuning(filelistf="yes", filelistv=LIST, movenow="no")
    (warning,) = _lines(unraid.findings(OLD), "warning")
    assert "'Move Now button follows plug-in filters' is No (movenow=\"no\")" in warning
    assert "set it to Yes" in warning


def test_the_move_all_threshold_warns_only_when_omovercfg_is_yes(unraid):
    # omovercfg="no" makes age_mover ignore omoverthresh: no warning however it is set.
    unraid.tuning(filelistf="yes", filelistv=LIST, omovercfg="no", omoverthresh="80")
    assert not any("omoverthresh" in line for line in _lines(unraid.findings(), "warning"))

    unraid.tuning(filelistf="yes", filelistv=LIST, omovercfg="yes", omoverthresh="80")
    (threshold,) = [line for line in _lines(unraid.findings(), "warning") if "omoverthresh" in line]
    assert "once the pool is above 80%" in threshold and 'omoverthresh="80"' in threshold
    assert "'Move All from Primary->Secondary (cache:yes) shares" in threshold
    assert "set it to No" in threshold

    unraid.tuning(filelistf="yes", filelistv=LIST, omovercfg="yes", omoverthresh="0")
    assert any("always (above 0%)" in line for line in _lines(unraid.findings(), "warning"))


def test_mover_tuning_s_forced_move_runs_the_stock_mover(unraid):
    unraid.tuning(filelistf="yes", filelistv=LIST, force="yes", cron="30 3 * * *")
    unraid.cron("ca.mover.tuning", FORCED_CRON)
    (forced,) = [line for line in _lines(unraid.findings(), "warning") if "Force move" in line]
    assert "'Force move of all files on a schedule' (force=\"yes\", cron=\"30 3 * * *\")" in forced
    assert "stock mover" in forced and "set 'Force move of all files on a schedule' to No" in forced
    # The cron file alone is what update_cron schedules, whatever the setting says now.
    unraid.tuning(filelistf="yes", filelistv=LIST, force="no")
    assert any("Force move" in line for line in _lines(unraid.findings(OLD), "warning"))


def test_unraid_s_own_schedule_on_7_2_1_is_found_in_var_ini_share_cfg_or_its_cron_file(unraid):
    def schedule_warnings(version=NEW):
        return [line for line in _lines(unraid.findings(version), "warning")
                if "built-in mover has its own schedule" in line]

    unraid.var_ini(schedule="0 3 * * *")
    (warning,) = schedule_warnings()
    assert 'shareMoverSchedule="0 3 * * *"' in warning
    assert "Settings → Scheduler → Mover Settings: set the schedule to Disabled" in warning
    assert schedule_warnings(OLD) == []  # before 7.2.1 Mover Tuning runs that schedule

    unraid.var_ini(schedule=None)  # emhttpd's view without the key: the saved setting counts
    (unraid.host.boot_config_dir / "share.cfg").write_text(
        'shareCacheEnabled="yes"\nshareMoverSchedule="0 4 * * *"\nshareMoverLogging="no"\n')
    assert len(schedule_warnings()) == 1

    (unraid.host.boot_config_dir / "share.cfg").write_text('shareMoverSchedule=""\n')
    assert schedule_warnings() == []
    unraid.cron("dynamix", STOCK_CRON)  # a schedule update_cron still installs
    assert len(schedule_warnings()) == 1


def test_a_share_override_with_its_own_list_or_threshold_is_named_with_its_file(unraid):
    unraid.override("Movies", filelistf="yes", filelistv="/mnt/user/appdata/other.txt")
    unraid.override("TV", omovercfg="yes", omoverthresh="85")
    unraid.override("Music", filelistf="yes", filelistv="/elsewhere.txt")  # not cached by us
    findings = unraid.findings()
    (problem,) = _lines(findings, "problem")
    assert "share Movies's Mover Tuning override (shareOverrideConfig/Movies.cfg)" in problem
    assert "'/mnt/user/appdata/other.txt'" in problem
    assert f"Shares → Movies → Mover Tuning: set 'File list path' to {LIST}" in problem
    (threshold,) = [line for line in _lines(findings, "warning") if "override" in line]
    assert "share TV's Mover Tuning override (shareOverrideConfig/TV.cfg)" in threshold
    assert "above 85%" in threshold


def test_an_override_that_is_off_or_keeps_the_global_list_is_not_a_finding(unraid):
    unraid.override("Movies", moverOverride="no", filelistf="yes", filelistv="/other.txt",
                    omovercfg="yes", omoverthresh="50")
    unraid.override("TV", filelistf="no", filelistv="/other.txt", omovercfg="no",
                    omoverthresh="50")  # "no" in an override keeps the global values
    assert set(mover_tuning_overrides(unraid.host)) == {"TV"}
    assert not any("override" in line for line in
                   _lines(unraid.findings(), "problem") + _lines(unraid.findings(), "warning"))


def test_a_settings_file_with_windows_line_ends_is_not_read_by_mover_tuning(unraid):
    unraid.tuning(newline="\r\n", filelistf="yes", filelistv=LIST)
    (problem,) = _lines(unraid.findings(), "problem")
    assert "Mover Tuning does not read cacherr's list" in problem
    assert "Windows line ends" in problem


def test_without_mover_tuning_every_mover_run_moves_cached_files_back(unraid):
    (unraid.tuning_dir / "ca.mover.tuning.cfg").unlink()
    warnings = _lines(unraid.findings(), "warning")
    assert any("Mover Tuning is not installed" in line for line in warnings)


def test_lines_of_the_list_that_are_not_pool_paths_are_named(unraid, tmp_path):
    listing = tmp_path / "mover-exclude.txt"
    listing.write_text("\n".join([
        "# my own entries", "/mnt/cache/Movies/Kept", "/mnt/user/Movies/Wrong (2020)",
        "/data/movies/Container path", "/mnt/disk1/Movies/On the array", BEGIN,
        "/mnt/user/never/judged/inside/cacherr/block", END]) + "\n")
    (warning,) = [line for line in _lines(unraid.findings(exclude=listing), "warning")
                  if "not pool paths" in line]
    assert f"3 line(s) of {listing} are not pool paths (first: /mnt/user/Movies/Wrong (2020))" \
        in warning
    assert "/mnt/<pool>/<share>/..." in warning
    listing.write_text(f"/mnt/nvme/TV/Show\n{BEGIN}\n/mnt/cache/Movies/a.mkv\n{END}\n")
    assert not any("not pool paths" in line
                   for line in _lines(unraid.findings(exclude=listing), "warning"))


def test_settings_are_read_as_age_mover_reads_them(tmp_path):
    cfg = tmp_path / "ca.mover.tuning.cfg"
    cfg.write_text('filelistf="yes"\nfilelistf="no"\n filelistv="/x"\nomoverthresh=""80""\n'
                   'omovercfg="yes"')  # no newline after the last line
    values = read_mover_tuning_file(cfg)
    assert values["filelistf"] == "yes"  # the first line of a key wins
    assert "filelistv" not in values  # " filelistv" is another key
    assert values["omoverthresh"] == '"80"'  # one pair of quotes is removed
    assert "omovercfg" not in values  # `while read` never reads an unterminated last line
    assert read_mover_tuning_file(tmp_path / "missing.cfg") is None


def test_the_readme_names_every_mover_path_and_setting_doctor_checks():
    readme = (REPO / "README.md").read_text()
    section = readme.split("### Mover Tuning (Unraid)", 1)[1].split("\n## ", 1)[0]
    for needle in ("shareMoverSchedule", "`force`, `cron`", "`movenow`", "**Move** button",
                   "a share's *Move Now*", "`omovercfg`, `omoverthresh`",
                   "shareOverrideConfig/<Share>.cfg", "**pool path**, `/mnt/<pool>/<share>/...`",
                   "`/mnt/user/...`", "7.2.1+"):
        assert needle in section, needle
