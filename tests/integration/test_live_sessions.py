"""The engine's re-poll of sessions: a file someone plays now is seen as playing, through
the path mapping, and one poll serves the steps of one action."""

from __future__ import annotations

from cacherr.config.model import Keep, Rule
from cacherr.cycle.live import session_check
from cacherr.sources.live import LiveSessions
from cacherr.testing.fakeplex import FakePlex
from cacherr.testing.world import small_world

OTHER = "Movies/Other Movie (2001)/Other Movie (2001).mkv"


def test_a_file_played_now_is_seen_and_one_poll_serves_a_moment(tmp_path):
    scenario = small_world()
    with FakePlex(scenario) as fake:
        config = fake.config([Rule("r", "ondeck", Keep(while_selected=True))],
                             state_dir=tmp_path)
        now = [100.0]
        live = LiveSessions(config, max_age_seconds=2.0, clock=lambda: now[0], env=fake.env())
        check = session_check(config, live)
        assert check(OTHER) is False
        fake.start_session("owner", scenario.movies[2].rating_key)
        assert check(OTHER) is False, "within max_age the last poll answers"
        now[0] += 3.0
        fake.reset_counts()
        assert check(OTHER) is True
        assert check("Movies/Trending Movie (2001)/Trending Movie (2001).mkv") is False
        assert fake.count("pms", "/status/sessions") == 1
        fake.fail("pms", "/", status=500)
        now[0] += 3.0
        assert check(OTHER) is True, "a failed poll keeps the last known sessions"
