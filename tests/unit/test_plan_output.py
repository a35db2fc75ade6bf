"""`plan` and `ls` print each look-ahead window on one line, whatever Plex calls a show."""

from cacherr.commands.plan import print_windows


def test_a_window_is_one_line_and_a_hostile_title_cannot_drive_the_terminal(capsys):
    hostile = "Show\x1b[2J\nahead  99 ep  fake"
    print_windows([{"episodes": 3, "rule": "binge", "users": ["alice"], "show": hostile,
                    "reason": f"alice watches 2.5 episodes/day of {hostile} → 3 ahead"}])
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "\x1b" not in out
    assert out.startswith("ahead    3 ep  binge")
    assert "Show\\x1b[2J\\nahead  99 ep  fake" in out
