from cacherr.sources.http import RetryPolicy, SourceSession, overrides_from_env


def session(env):
    return SourceSession(overrides=overrides_from_env(env), timeout_seconds=1, retry=RetryPolicy(),
                         classify=lambda url: "plextv")


def test_overrides_replace_only_the_scheme_and_host():
    s = session({"CACHERR_PLEXTV_URL": "http://127.0.0.1:9/", "CACHERR_TRAKT_URL": "http://127.0.0.1:8"})
    assert s.rewrite("https://plex.tv/api/v2/user") == "http://127.0.0.1:9/api/v2/user"
    assert s.rewrite("https://api.trakt.tv/movies/trending?limit=1") == "http://127.0.0.1:8/movies/trending?limit=1"


def test_without_overrides_nothing_changes():
    s = session({})
    assert s.rewrite("https://discover.provider.plex.tv/library") == "https://discover.provider.plex.tv/library"


def test_a_host_that_merely_starts_like_plex_tv_is_not_rewritten():
    s = session({"CACHERR_PLEXTV_URL": "http://127.0.0.1:9"})
    assert s.rewrite("https://plex.tv.example.com/x") == "https://plex.tv.example.com/x"


def test_discover_and_metadata_have_their_own_overrides():
    s = session({"CACHERR_DISCOVER_URL": "http://127.0.0.1:1", "CACHERR_METADATA_URL": "http://127.0.0.1:2"})
    assert s.rewrite("https://discover.provider.plex.tv/library/sections/watchlist/all").startswith("http://127.0.0.1:1/")
    assert s.rewrite("https://metadata.provider.plex.tv/") == "http://127.0.0.1:2/"
