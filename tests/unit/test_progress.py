"""Long transfers show a bar on a terminal and sparse log lines otherwise."""

import io
import logging

from cacherr.cycle.progress import Progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_gets_a_redrawn_bar_that_ends_with_a_newline():
    stream = Terminal()
    clock = iter([0.0, 1.0, 2.0]).__next__
    progress = Progress(stream, clock=clock)
    progress.start("Movies/A.mkv")
    progress(50, 100)
    progress(100, 100)
    text = stream.getvalue()
    assert text.count("\r[") == 2 and " 50% " in text and "100% " in text
    assert text.endswith("\n") and "Movies/A.mkv" in text


def test_a_log_gets_at_most_one_line_per_interval_and_one_at_the_end(caplog):
    times = iter([0.0, 1.0, 5.0, 11.0, 12.0])
    progress = Progress(io.StringIO(), every_seconds=10, clock=lambda: next(times))
    progress.start("b.mkv")
    with caplog.at_level(logging.INFO, logger="cacherr.cycle.progress"):
        progress(10, 100)   # t=1: too soon
        progress(20, 100)   # t=5: too soon
        progress(60, 100)   # t=11: logged
        progress(100, 100)  # t=12: the end, logged
    assert [r.getMessage() for r in caplog.records] == [
        "copying b.mkv: 60% of 100 B", "copying b.mkv: 100% of 100 B"]
