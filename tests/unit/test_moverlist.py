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
