"""Which files travel with a video (`cache.sidecars`): pure name matching, no I/O.

`subtitles`: the video's own subtitle files, same basename plus optional tags
(`Movie.srt`, `Movie.en.srt`, `Movie.en.forced.srt`, `Movie.pt-BR.sdh.ass`). When two
videos in a folder share a prefix (`Movie.mkv`, `Movie.Extended.mkv`), a subtitle belongs
to the video with the longest matching basename. `all`: every sibling file that is not a
video itself (subtitles, posters, .nfo, ...); files several videos share stay on the fast
side until the last of them leaves (the ledger counts the references).
"""

from __future__ import annotations

from collections.abc import Iterable

POLICIES = ("none", "subtitles", "all")
SUBTITLE_EXTENSIONS = frozenset({".srt", ".ass", ".ssa", ".sub", ".idx", ".vtt", ".sup"})
# Files Plex plays as videos in their own right: never someone else's sidecar.
VIDEO_EXTENSIONS = frozenset(
    {
        ".3g2", ".3gp", ".asf", ".avi", ".divx", ".dv", ".f4v", ".flv", ".iso", ".m2t",
        ".m2ts", ".m4v", ".mkv", ".mov", ".mp4", ".mpeg", ".mpg", ".mts", ".mxf", ".ogm",
        ".ogv", ".rm", ".rmvb", ".ts", ".vob", ".webm", ".wmv", ".wtv", ".xvid",
    }
)  # fmt: skip


def _extension(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def _stem(name: str) -> str:
    dot = name.rfind(".")
    return name[:dot] if dot > 0 else name


def is_video(name: str) -> bool:
    return _extension(name) in VIDEO_EXTENSIONS


def sidecar_names(policy: str, video_name: str, sibling_names: Iterable[str]) -> list[str]:
    """Given the policy, a video's file name and the names beside it (in its folder),
    return the names of its sidecars, sorted. Hidden names (cacherr's working files among
    them) are never sidecars."""
    if policy not in POLICIES:
        raise ValueError(f"sidecars must be one of {', '.join(POLICIES)}, not {policy!r}")
    siblings = sorted({n for n in sibling_names if n != video_name and not n.startswith(".")})
    if policy == "none":
        return []
    if policy == "all":
        return [name for name in siblings if not is_video(name)]
    stems = {_stem(video_name)} | {_stem(n) for n in siblings if is_video(n)}
    mine = _stem(video_name)
    found = []
    for name in siblings:
        if _extension(name) not in SUBTITLE_EXTENSIONS:
            continue
        owners = [stem for stem in stems if _stem(name) == stem or name.startswith(stem + ".")]
        if owners and max(owners, key=len) == mine:
            found.append(name)
    return found
