import pathlib

import pytest

from cacherr.sources.trakt import _norm, guids_of, trakt_ids, trakt_path


def test_rule_list_names_become_trakt_api_paths():
    assert trakt_path("movies/trending") == "/movies/trending"
    assert trakt_path("shows/anticipated") == "/shows/anticipated"
    assert trakt_path("users/alice/lists/best-of") == "/users/alice/lists/best-of/items"
    assert trakt_path("users/alice/watchlist") == "/users/alice/watchlist"


def test_an_unknown_list_name_is_refused():
    with pytest.raises(ValueError):
        trakt_path("movies")


def test_trakt_entries_of_every_list_shape_give_their_ids():
    assert trakt_ids({"watchers": 1, "movie": {"ids": {"imdb": "tt1"}}}, "movies/trending") == ("movie", {"imdb": "tt1"})
    assert trakt_ids({"title": "x", "ids": {"tvdb": 5}}, "shows/popular") == ("show", {"tvdb": 5})
    assert trakt_ids({"type": "episode", "episode": {"ids": {}}}, "users/a/watchlist") is None


def test_ids_are_tried_imdb_then_tmdb_then_tvdb_and_nulls_are_skipped():
    assert guids_of({"tvdb": 3, "tmdb": 2, "imdb": "tt1", "trakt": 9}) == ["imdb://tt1", "tmdb://2", "tvdb://3"]
    assert guids_of({"imdb": None, "tmdb": 2}) == ["tmdb://2"]


def test_legacy_agent_guids_compare_like_modern_ones():
    assert _norm("com.plexapp.agents.imdb://tt0000101?lang=en") == "imdb://tt0000101"
    assert _norm("com.plexapp.agents.thetvdb://900200/1/2?lang=en") == "tvdb://900200"


def test_only_the_adapter_imports_plexapi():
    root = pathlib.Path(__file__).resolve().parents[2] / "cacherr"
    importers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                       if "import plexapi" in p.read_text() or "from plexapi" in p.read_text())
    assert importers == ["sources/errors.py", "sources/plex.py", "sources/plextv.py"]
