"""The mover exclusion file: one path per line, no blank lines, atomic, and only the
block between cacherr's markers is cacherr's."""

from cacherr.cycle.moverlist import BEGIN, END, MoverList


def test_the_list_holds_sorted_paths_between_markers_and_no_blank_line(tmp_path):
    path = tmp_path / "exclude.txt"
    mover = MoverList(path)
    mover.rewrite(["/mnt/cache/TV/b.mkv", "/mnt/cache/Movies/a.mkv"])
    assert path.read_text() == f"{BEGIN}\n/mnt/cache/Movies/a.mkv\n/mnt/cache/TV/b.mkv\n{END}\n"
    mover.add("/mnt/cache/Movies/c.mkv")
    mover.remove("/mnt/cache/TV/b.mkv")
    assert mover.entries() == ["/mnt/cache/Movies/a.mkv", "/mnt/cache/Movies/c.mkv"]
    assert "" not in path.read_text().splitlines()
    assert [p.name for p in tmp_path.iterdir()] == ["exclude.txt"], "a temporary file was left"


def test_the_users_own_lines_around_the_block_are_kept(tmp_path):
    path = tmp_path / "exclude.txt"
    path.write_text("/mnt/cache/Keep/mine.mkv\r\n\r\n/mnt/cache/Keep/folder\n")
    mover = MoverList(path)
    mover.rewrite(["/mnt/cache/Movies/a.mkv"])
    assert path.read_text().splitlines() == [
        "/mnt/cache/Keep/mine.mkv", "/mnt/cache/Keep/folder", BEGIN,
        "/mnt/cache/Movies/a.mkv", END]
    text = path.read_text().replace(END, END + "\n/mnt/cache/Keep/after.mkv")
    path.write_text(text)
    mover.rewrite([])
    assert path.read_text().splitlines() == [
        "/mnt/cache/Keep/mine.mkv", "/mnt/cache/Keep/folder", BEGIN, END,
        "/mnt/cache/Keep/after.mkv"]


def test_the_file_keeps_its_mode(tmp_path):
    path = tmp_path / "exclude.txt"
    path.write_text("")
    path.chmod(0o664)
    MoverList(path).rewrite(["/x"])
    assert path.stat().st_mode & 0o777 == 0o664


# -- what Mover Tuning does with the lines (issue 11, points 7 and 8) ---------------------

from cacherr.cycle.moverlist import covered, safe_line, share_sizes  # noqa: E402


def test_refused_characters_never_reach_the_list_and_the_file_stays_covered():
    for path in ["/mnt/cache/Movies/`touch X`.mkv", "/mnt/cache/Movies/$(touch X).mkv",
                 '/mnt/cache/Movies/a "b".mkv', "/mnt/cache/Movies/a\\b.mkv",
                 "/mnt/cache/Movies/a\nb.mkv", "/mnt/cache/Mo$vies/x.mkv",
                 "/mnt/cache/Movies/caf\udce9.srt"]:
        line = safe_line(path)
        assert not set(line) & set("`$\"\\\n") and line.isprintable(), line
        assert "*" in line.rpartition("/")[2]  # a pattern, as Mover Tuning reads it
        assert covered([line], path)
    assert safe_line("/mnt/cache/Movies/It's (1) [2] #3.mkv") == (
        "/mnt/cache/Movies/It's (1) [2] #3.mkv")


def test_lines_cover_paths_as_mover_tunings_find_does():
    lines = ["/mnt/cache/Movies/*.cacherr-tmp", "/mnt/cache/TV/Show/", "/mnt/cache/M/a [1].mkv",
             "/mnt/cache/M/b [1]*"]
    assert covered(lines, "/mnt/cache/Movies/X (2001)/.X (2001).mkv.cacherr-tmp")
    assert covered(lines, "/mnt/cache/TV/Show/Season 1/e1.mkv")
    assert covered(lines, "/mnt/cache/M/a [1].mkv")
    assert covered(lines, "/mnt/cache/M/b [1].mkv")  # `[` is literal in the pattern too
    assert not covered(lines, "/mnt/cache/Movies/X (2001)/X (2001).mkv")
    assert not covered(lines, "/mnt/cache/TV/Show 2/e1.mkv")
    assert not covered(lines, "/mnt/cache/M/b 1.mkv")


def test_share_sizes_count_the_find_arguments_of_each_shares_lines():
    lines = ["/mnt/cache/Movies/a.mkv", "/mnt/cache/Movies/b.mkv", "/mnt/cache/TV/c.mkv",
             "# a comment", "/mnt/other/Movies/x.mkv"]
    sizes = share_sizes(lines, "/mnt/cache")
    assert set(sizes) == {"Movies", "TV"}
    assert sizes["Movies"] == 2 * (len("/mnt/cache/Movies/a.mkv") + len('-not -path "" '))
