"""The first start of the image, as a new user makes it: an empty /config, PLEX_URL and
PLEX_TOKEN set, and no volume at /var/run. The entry point writes the starter rules file
(dry_run: true) as PUID:PGID; the container stays up, healthy but idle, until the file is
valid; saving a valid file starts the service, whose mover guard is then unknown (the
host's /var/run is not visible), and whose mover list is under /mnt."""

from __future__ import annotations

import os
import time

import pytest

from cacherr.testing.scenarios import Scenario, Section, User
from tests.container.deployment import PGID, PUID, deployed, rules, tree_owners_and_modes


@pytest.fixture
def first_start(image):
    scenario = Scenario(sections=[Section(1, "Movies", "movie", "/data/media/Movies")],
                        movies=[], shows=[], users=[User("owner", 1, "owner", "OWNER-TOKEN")],
                        now=time.time())
    with deployed(image, scenario, name="cacherr-test-first", disks=1,
                  mount_var_run=False) as running:
        yield running


def test_the_first_start_writes_the_starter_file_and_waits_healthy_until_it_is_valid(
        first_start):
    deployed = first_start
    health = deployed.wait_healthy("the idle service to answer /health",
                                   lambda h: h.get("config", {}).get("waiting_for_rules"))
    starter = deployed.config / "rules.yaml"
    text = starter.read_text()
    assert "dry_run: true" in text and '"${PLEX_URL}"' in text and "127.0.0.1:32400" not in text
    st = os.stat(starter)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (PUID, PGID, 0o644)
    assert health["status"] == "degraded"
    assert "/mnt/user" in health["config"]["waiting_for_rules"]  # what to fix, said plainly
    assert deployed.podman("healthcheck", "run", deployed.name, check=False).returncode == 0
    assert deployed.metric("cacherr_config_last_reload_successful") == 0
    assert deployed.running()
    assert "no rules file at /config/rules.yaml" in deployed.logs()

    # The user edits the file and saves it: the file-change check picks it up.
    with starter.open("w") as handle:  # in place: the owner stays PUID:PGID
        handle.write(rules(deployed.port))
    health = deployed.wait_healthy(
        "the service to start with the valid file",
        lambda h: not h["config"].get("waiting_for_rules") and h.get("last_cycle"))
    # No volume at /var/run: the host's mover is invisible, so the guard is unknown.
    assert health["guards"]["mover"] == "unknown"
    assert any("guard mover is unknown" in problem for problem in health["problems"])
    # state_dir is /config/state, which the host cannot see at that path: the default
    # mover list goes to the pool, under /mnt.
    mover_list = deployed.sandbox.fast / "appdata" / "cacherr" / "mover-exclude.txt"
    assert mover_list.exists()
    assert not (deployed.config / "state" / "mover-exclude.txt").exists()
    for name, (uid, gid, mode) in tree_owners_and_modes(deployed.config).items():
        assert (uid, gid) == (PUID, PGID) and mode & 0o022 == 0, (name, uid, gid, oct(mode))
    seconds, exit_code = deployed.stop()
    assert exit_code == 0 and seconds < 30, deployed.logs()[-3000:]
