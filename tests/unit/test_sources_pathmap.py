from cacherr.config.model import PathMapping
from cacherr.sources.pathmap import PathMapper, is_windows_path

MAPPER = PathMapper([
    PathMapping(plex="/data/media", host="/mnt/user/media"),
    PathMapping(plex="/data/media/tv", host="/mnt/user/tv"),
    PathMapping(plex="D:\\Media", host="/mnt/user/windows"),
])


def test_the_longest_plex_prefix_wins():
    assert MAPPER.to_host("/data/media/tv/Show/S01E01.mkv") == "/mnt/user/tv/Show/S01E01.mkv"
    assert MAPPER.to_host("/data/media/movies/A.mkv") == "/mnt/user/media/movies/A.mkv"


def test_a_prefix_matches_only_whole_path_components():
    assert MAPPER.to_host("/data/mediaextra/A.mkv") is None


def test_an_unmapped_path_is_not_guessed():
    assert MAPPER.to_host("/srv/other/A.mkv") is None


def test_a_path_that_climbs_out_of_its_mapping_is_refused():
    assert MAPPER.to_host("/data/media/../../etc/passwd") is None


def test_windows_paths_map_case_insensitively_with_forward_slashes_on_the_host():
    assert MAPPER.to_host("d:\\media\\Movies\\A (2000)\\A.mkv") == "/mnt/user/windows/Movies/A (2000)/A.mkv"


def test_windows_paths_are_recognised_with_drive_letters_and_unc_names():
    assert is_windows_path("C:\\x.mkv") and is_windows_path("C:/x.mkv") and is_windows_path("\\\\nas\\share\\x")
    assert not is_windows_path("/data/x.mkv")


def test_host_paths_map_back_to_plex_paths():
    assert MAPPER.to_plex("/mnt/user/tv/Show/S01E01.mkv") == "/data/media/tv/Show/S01E01.mkv"
    assert MAPPER.to_plex("/mnt/user/windows/Movies/A.mkv") == "D:\\Media\\Movies\\A.mkv"
    assert MAPPER.to_plex("/elsewhere/A.mkv") is None


def test_the_suggestion_for_an_unmapped_path_names_its_library_folder_and_leaves_the_host_side_open():
    text = PathMapper([]).suggestion("/volume1/movies/A (2000)/A.mkv", ["/volume1/movies"])
    assert "'/volume1/movies'" in text and "host: <" in text


def test_the_suggestion_for_a_windows_path_says_it_is_windows_style():
    text = PathMapper([]).suggestion("E:\\Films\\A.mkv")
    assert "Windows-style" in text and "E:\\\\Films" in text


def test_within_compares_folders_the_way_each_kind_of_path_compares():
    from cacherr.sources.pathmap import within

    assert within("/data/media/movies/a.mkv", "/data/media/movies/")
    assert not within("/data/media/movies-4k/a.mkv", "/data/media/movies")
    assert within("m:/media/Movies/A (1992)/a.mkv", "M:\\Media\\movies\\A (1992)")  # any case, either slash
    assert not within("M:\\Media\\Movies\\a.mkv", "/data/media")
