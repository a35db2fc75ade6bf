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


def test_a_transcoded_file_is_seen_playing_for_one_more_request_and_live_tv_for_none(tmp_path):
    scenario = small_world()
    with FakePlex(scenario) as fake:
        config = fake.config([Rule("r", "ondeck", Keep(while_selected=True))], state_dir=tmp_path)
        live = LiveSessions(config, max_age_seconds=0.0, env=fake.env())
        check = session_check(config, live)
        assert check(OTHER) is False  # connects
        fake.start_session("owner", 0, kind="live")
        fake.reset_counts()
        assert check(OTHER) is False
        assert fake.count() == 1, "a poll is one request: the connection is kept"
        fake.start_session("owner", scenario.movies[2].rating_key, transcode=True)
        fake.reset_counts()
        assert check(OTHER) is True
        assert [r.path for r in fake.requests] == ["/status/sessions", "/library/metadata/103"]
        live.close()


def test_a_transcoded_session_whose_version_is_gone_protects_every_version(tmp_path):
    from cacherr.testing.scenarios import Scenario

    scenario = Scenario.small_demo()
    with FakePlex(scenario) as fake:
        config = fake.config([Rule("r", "ondeck", Keep(while_selected=True))], state_dir=tmp_path)
        live = LiveSessions(config, max_age_seconds=0.0, env=fake.env())
        fake.start_session("kid", 101, transcode=True, version=1)
        assert live.host_paths() == {"/mnt/user/media/movies/Example Movie (2008)/Example Movie (2008) - 2160p.mkv"}
        fake.stop_session("kid")
        fake.start_session("kid", 101, transcode=True, media_id=424242)  # re-analysed since
        assert live.host_paths() == {
            "/mnt/user/media/movies/Example Movie (2008)/Example Movie (2008) - 1080p.mkv",
            "/mnt/user/media/movies/Example Movie (2008)/Example Movie (2008) - 2160p.mkv"}
        live.close()
