from cacherr.sources.picks import choose_files, episodes_after, first_unwatched
from cacherr.sources.types import Item, MediaFile, MediaVersion


def episode(season, number, *, watched=False, released="2020-01-01", key=None):
    files = (MediaFile(f"/tv/S{season:02d}E{number:02d}.mkv", 100),)
    return Item(rating_key=key or season * 100 + number, type="episode", title="e", library="TV",
                season_index=season, episode_index=number, versions=(MediaVersion(files),),
                view_count=1 if watched else 0, released=released, show_title="Show")


SHOW = [episode(s, e) for s in (2, 1) for e in (3, 1, 2)] + [episode(0, 1)]


def test_the_next_episodes_continue_into_the_next_season():
    picked = episodes_after(SHOW, (1, 2), 3)
    assert [(e.season_index, e.episode_index) for e in picked] == [(1, 3), (2, 1), (2, 2)]


def test_specials_are_not_next_episodes():
    assert episode(0, 1).rating_key not in {e.rating_key for e in episodes_after(SHOW, (1, 1), 10)}


def test_there_are_no_next_episodes_after_the_last_one():
    assert episodes_after(SHOW, (2, 3), 5) == []


def test_first_unwatched_skips_watched_and_unreleased_episodes():
    show = [episode(1, 1, watched=True), episode(1, 2, released="2999-01-01"), episode(1, 3), episode(2, 1)]
    picked = first_unwatched(show, 2, "2025-01-01")
    assert [(e.season_index, e.episode_index) for e in picked] == [(1, 3), (2, 1)]


def test_first_unwatched_can_judge_by_another_users_history():
    show = [episode(1, 1, watched=True), episode(1, 2)]
    assert [e.episode_index for e in first_unwatched(show, 1, "2025-01-01", watched={102})] == [1]


def movie_with(*sizes):
    versions = tuple(MediaVersion((MediaFile(f"/m/{i}.mkv", size),)) for i, size in enumerate(sizes))
    return Item(rating_key=1, type="movie", title="m", library="Movies", versions=versions)


def test_versions_all_gives_every_file_of_every_version():
    assert [f.plex_path for f in choose_files(movie_with(8, 40), "all")] == ["/m/0.mkv", "/m/1.mkv"]


def test_versions_smallest_and_largest_pick_one_version_by_total_size():
    item = movie_with(8, 40)
    assert [f.size_bytes for f in choose_files(item, "smallest")] == [8]
    assert [f.size_bytes for f in choose_files(item, "largest")] == [40]


def test_an_item_without_media_gives_no_files():
    assert choose_files(movie_with(), "all") == ()
