"""Plex's elements read one by one: odd ones are skipped and counted, never raised; the
container fills in what items leave out; sessions resolve to the files they read."""

from xml.etree import ElementTree as ET

import pytest

from cacherr.sources.convert import Skips, each, pages, to_history, to_item
from cacherr.sources.sessions import needing_source, parse_session, resolve
from cacherr.sources.types import Item, MediaFile, MediaVersion


def xml(text):
    return ET.fromstring(text)


def test_a_bad_element_is_skipped_and_counted_and_its_neighbours_are_read():
    root = xml('<MediaContainer librarySectionID="4" librarySectionTitle="TV">'
               '<Video ratingKey="1" type="movie" title="ok"/>'
               '<Video type="movie" title="no rating key"/>'
               '<Video ratingKey="abc" type="movie"/>'
               '<Video ratingKey="2" type="movie" viewCount="many"/>'
               '<Video ratingKey="3" type="movie" title="also ok"/></MediaContainer>')
    skips = Skips()
    items = list(each([(el, root) for el in root], to_item, skips, "plex", "item"))
    assert [i.rating_key for i in items] == [1, 3]
    assert skips.by_source == {"plex": 3}
    assert items[0].library == "TV" and items[0].library_id == 4  # from the container


def test_history_rows_of_deleted_items_are_dropped_without_counting():
    root = xml('<MediaContainer size="2"><Video historyKey="/h/1" title="x" type="movie" viewedAt="5" accountID="1"/>'
               '<Video historyKey="/h/2" ratingKey="9" title="y" type="movie" viewedAt="6" accountID="1"/>'
               '<Video historyKey="/h/3" ratingKey="8" type="movie" viewedAt="7"/></MediaContainer>')
    skips = Skips()
    rows = list(each([(el, root) for el in root], to_history, skips, "plex", "history row"))
    assert [(r.rating_key, r.viewed_at) for r in rows] == [(9, 6.0)]
    assert skips.by_source == {"plex": 1}  # the row with no account, not the deleted item's


def test_only_absolute_files_make_a_version_and_windows_paths_are_absolute():
    el = xml('<Video ratingKey="1" type="movie"><Media id="5" videoResolution="1080">'
             '<Part file="M:\\Media\\a.mkv" size="10"/><Part file="bare.mkv" size="3"/></Media>'
             '<Media id="6"><Part decision="transcode"/></Media></Video>')
    item = to_item(el)
    assert item.versions == (MediaVersion((MediaFile("M:\\Media\\a.mkv", 10),), "1080", 5),)


def session_xml(part, media_id="11", extra=""):
    return xml(f'<Video ratingKey="7" type="movie" title="m" sessionKey="3" librarySectionID="1">'
               f'<Media id="{media_id}" selected="1">{part}</Media>{extra}'
               f'<User id="5" title="kid"/><Player state="paused"/></Video>')


LIBRARY = Item(rating_key=7, type="movie", title="m", library="Movies", versions=(
    MediaVersion((MediaFile("/m/a-1080.mkv", 1),), "1080", 11),
    MediaVersion((MediaFile("/m/a-4k.mkv", 2),), "4k", 12)))


def test_a_direct_played_session_names_its_file_and_needs_no_lookup():
    record = parse_session(session_xml('<Part file="/m/a-1080.mkv" size="1" decision="directplay"/>'))
    assert not record.needs_source and needing_source([record]) == set()
    (found,) = resolve([record], {})
    assert [f.plex_path for f in found.item.files] == ["/m/a-1080.mkv"]
    assert (found.user_name, found.account_id, found.state, found.kind) == ("kid", 5, "paused", "movie")


@pytest.mark.parametrize("media_id, files", [
    ("12", ["/m/a-4k.mkv"]),
    ("99", ["/m/a-1080.mkv", "/m/a-4k.mkv"]),
], ids=["the version it plays", "every version when none matches"])
def test_a_transcoded_session_reads_the_files_of_its_library_item(media_id, files):
    record = parse_session(session_xml('<Part decision="transcode" protocol="dash"/>', media_id,
                                       '<TranscodeSession key="/t/1"/>'))
    assert record.needs_source and needing_source([record]) == {7}
    (found,) = resolve([record], {7: LIBRARY})
    assert found.transcoding and [f.plex_path for f in found.item.files] == files


def test_a_transcoded_session_of_an_item_gone_from_the_library_reads_nothing():
    record = parse_session(session_xml('<Part decision="transcode"/>'))
    assert resolve([record], {})[0].item.files == ()


def test_live_tv_is_not_a_playback_of_a_library_file_and_a_missing_user_is_tolerated():
    live = xml('<Video ratingKey="203216" type="episode" live="1" key="/livetv/sessions/x">'
               '<Media origin="livetv"><Part/></Media></Video>')
    assert parse_session(live) is None
    nobody = parse_session(xml('<Video ratingKey="7" type="movie"><Media id="1"><Part file="/x.mkv"/>'
                               '</Media></Video>'))
    assert (nobody.session.user_name, nobody.session.account_id, nobody.session.state) == ("", None, "playing")


@pytest.mark.parametrize("element, kind", [
    ('<Track ratingKey="1" type="track"/>', "track"),
    ('<Video ratingKey="1" type="movie" subtype="clip"/>', "clip"),
    ('<Photo ratingKey="1" type="photo"/>', "photo"),
    ('<Video ratingKey="1" type="episode"/>', "episode"),
])
def test_session_kinds_and_only_movies_and_episodes_are_cached(element, kind):
    record = parse_session(xml(element))
    assert record.session.kind == kind
    assert record.session.cacheable is (kind in ("movie", "episode"))


class Pages:
    """A server answering pages of `total` elements, claiming `claimed` as totalSize."""

    def __init__(self, total, claimed=None, honour_size=True):
        self.total, self.claimed, self.honour_size, self.asked = total, claimed, honour_size, []

    def __call__(self, key, headers):
        start, size = int(headers["X-Plex-Container-Start"]), int(headers["X-Plex-Container-Size"])
        self.asked.append(start)
        end = min(self.total, start + size) if self.honour_size else self.total
        root = ET.Element("MediaContainer", size=str(max(0, end - start)))
        if self.claimed is not None:
            root.set("totalSize", str(self.claimed))
        for n in range(start, end):
            ET.SubElement(root, "Video", ratingKey=str(n))
        return root


def test_pages_are_followed_until_the_total_and_a_full_library_is_one_page():
    server = Pages(25, claimed=25)
    assert len(pages(server, "/x", 10)) == 25 and server.asked == [0, 10, 20]
    server = Pages(25, claimed=25)
    assert len(pages(server, "/x", 10_000)) == 25 and server.asked == [0]


def test_a_server_promising_more_than_it_sends_is_not_followed_for_ever():
    server = Pages(10, claimed=10**9)
    assert len(pages(server, "/x", 10)) == 10 and server.asked == [0, 10]
    server = Pages(30, claimed=10**9, honour_size=False)  # ignores the size: same page each time
    assert len(pages(server, "/x", 10, max_pages=3)) <= 90 and len(server.asked) <= 3
