"""The fake Plex answers the way the real services do (XML shapes, paging, content types),
and its control API works from Python and over HTTP."""

import xml.etree.ElementTree as ET

import pytest
import requests

from cacherr.config.model import Keep, Rule
from cacherr.sources.http import RetryPolicy, SourceSession
from cacherr.sources.plex import PlexAdapter
from cacherr.testing.fakeplex import FakePlex
from cacherr.testing.scenarios import Scenario

KEEP = Keep(while_selected=True)


@pytest.fixture
def fake():
    with FakePlex(Scenario.small_demo()) as server:
        yield server


def adapter(fake):
    session = SourceSession(overrides={}, timeout_seconds=5, retry=RetryPolicy(), classify=lambda u: "plex")
    return PlexAdapter(fake.pms_url, fake.owner_token, session, 5)


def get(fake, path, token=None, **headers):
    return requests.get(fake.pms_url + path, headers={"X-Plex-Token": token or fake.owner_token, **headers},
                        timeout=5)


def test_pms_answers_xml_and_honours_the_container_paging_headers(fake):
    response = get(fake, "/library/sections/2/all?type=4", **{"X-Plex-Container-Start": "2",
                                                             "X-Plex-Container-Size": "3"})
    root = ET.fromstring(response.content)
    assert response.headers["Content-Type"].startswith("application/xml")
    assert (root.get("size"), root.get("totalSize"), root.get("offset")) == ("3", "10", "2")
    assert len(root.findall("Video")) == 3


def test_paging_also_works_with_query_parameters(fake):
    root = ET.fromstring(get(fake, "/library/sections/1/all?X-Plex-Container-Start=0&X-Plex-Container-Size=0").content)
    assert (root.get("size"), root.get("totalSize")) == ("0", "3")


def test_unknown_tokens_are_refused_and_sessions_need_the_admin_token(fake):
    assert get(fake, "/", token="nope").status_code == 401
    assert get(fake, "/status/sessions", token="FRIEND-SERVER-TOKEN").status_code == 401


def test_sessions_carry_a_user_a_player_and_one_selected_version(fake):
    fake.start_session("friend", 101, state="paused")
    video = ET.fromstring(get(fake, "/status/sessions").content).find("Video")
    assert video.find("User").get("title") == "friend"
    assert video.find("Player").get("state") == "paused"
    assert len(video.findall("Media")) == 1 and video.find("Media").get("selected") == "1"


def test_the_real_plexapi_reads_items_with_every_part_of_every_version(fake):
    (movie,) = adapter(fake).items([101])
    assert [(v.resolution, [f.size_bytes for f in v.files]) for v in movie.versions] == [
        ("1080", [8 * 1024**3]), ("4k", [40 * 1024**3])]
    assert {"imdb://tt0000101", "tmdb://90101"} <= movie.guids and movie.released == "2008-05-20"


def test_the_real_plexapi_reads_episodes_in_order_with_watched_state_per_user(fake):
    plex = adapter(fake)
    owner = plex.episodes(200)
    friend = plex.episodes(200, "FRIEND-SERVER-TOKEN")
    assert [e.order for e in owner] == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]
    assert [e.watched for e in owner][:3] == [True, True, False]
    assert [e.watched for e in friend][:2] == [True, False]
    assert owner[2].view_offset_ms == 600_000 and owner[2].show_title == "Example Show"


def test_batched_metadata_requests_return_every_item_in_one_request(fake):
    plex = adapter(fake)
    fake.reset_counts()
    assert {i.rating_key for i in plex.items([101, 102, 103, 211])} == {101, 102, 103, 211}
    assert fake.count("pms") == 2  # GET / to connect, then one batch


def test_history_is_filtered_by_account_and_date(fake):
    plex = adapter(fake)
    rows = plex.history(account_id=2000002)
    assert [(r.rating_key, r.show_rating_key, r.season_index, r.episode_index) for r in rows] == [(211, 200, 1, 1)]
    assert plex.history(since=fake.scenario.now - 2.5 * 86400, account_id=1) == [
        r for r in plex.history(account_id=1) if r.viewed_at >= fake.scenario.now - 2.5 * 86400]


def test_plextv_answers_with_xml_content_types(fake):
    response = requests.get(fake.url("plextv") + "/api/users/", headers={"X-Plex-Token": "OWNER-TOKEN"}, timeout=5)
    assert response.headers["Content-Type"].startswith("application/xml")
    # like plex.tv's own answer (ha_plextv_shared_users.xml), friends carry no `home` at all
    assert {u.get("title"): u.get("home") for u in ET.fromstring(response.content)} == {"kid": "1", "friend": None}


def test_the_metadata_provider_answers_its_root(fake):
    response = requests.get(fake.url("metadata") + "/", headers={"X-Plex-Token": "OWNER-TOKEN"}, timeout=5)
    assert response.status_code == 200 and ET.fromstring(response.content).tag == "MediaContainer"


def test_trakt_needs_the_api_key_and_pages_like_trakt(fake):
    url = fake.url("trakt") + "/movies/trending?page=1&limit=1"
    assert requests.get(url, timeout=5).status_code == 403
    response = requests.get(url, headers={"trakt-api-key": "trakt-client-id"}, timeout=5)
    assert len(response.json()) == 1 and response.headers["X-Pagination-Item-Count"] == "2"


def test_the_control_api_works_over_http(fake, tmp_path):
    requests.post(fake.pms_url + "/_fakeplex/start_session", json={"user": "kid", "rating_key": 102}, timeout=5)
    result = fake.select([Rule(name="p", select="playing", keep=KEEP)], tmp_path)
    assert [w.item for w in result.wanted] == ["Second Movie (movie 102)"]
    count = requests.post(fake.pms_url + "/_fakeplex/count", json={"service": "pms"}, timeout=5).json()
    assert count["result"] == fake.count("pms") > 0


def test_marking_an_item_watched_moves_on_deck_along(fake, tmp_path):
    fake.mark_watched("friend", 212)
    result = fake.select([Rule(name="o", select="ondeck", keep=KEEP, users=("friend",))], tmp_path)
    assert [w.item for w in result.wanted] == ["Example Show S01E03"]


def test_a_hung_endpoint_is_released_when_asked(fake):
    fake.hang("pms", "/library/sections", seconds=30)
    with pytest.raises(requests.Timeout):
        requests.get(fake.pms_url + "/library/sections", headers={"X-Plex-Token": fake.owner_token},
                     timeout=0.2)
    fake.clear_faults()
    assert get(fake, "/library/sections").status_code == 200


def test_generated_scenarios_have_the_requested_size(tmp_path):
    scenario = Scenario.generate(items=200, users=5)
    files = len(scenario.movies) + sum(len(s.episodes) for show in scenario.shows for s in show.seasons)
    assert files == 200 and len(scenario.users) == 5
    assert {u.kind for u in scenario.users} == {"owner", "home", "friend"}


def test_a_scenario_survives_a_round_trip_through_json():
    import json

    scenario = Scenario.small_demo()
    again = Scenario.from_dict(json.loads(json.dumps(scenario.to_dict())))
    assert again == scenario


# -- the shapes real servers send (../shared/plex-captures), which the fake sends too


def sessions_xml(fake):
    return ET.fromstring(get(fake, "/status/sessions").content)


def test_a_transcoding_session_names_no_file_and_keeps_the_librarys_media_id(fake):
    fake.start_session("kid", 101, transcode=True, version=1)
    video = sessions_xml(fake).find("Video")
    media, part = video.find("Media"), video.find("Media/Part")
    assert media.get("id") == "1011"  # the 4K version's id in the library
    assert part.get("decision") == "transcode"
    assert {"file", "size", "key"}.isdisjoint(part.attrib)
    assert video.find("TranscodeSession") is not None


def test_live_tv_tracks_and_clips_are_sessions_too(fake):
    fake.start_session("owner", 0, kind="live")
    fake.start_session("friend", 5001, kind="track", file="/data/music/a.flac")
    fake.start_session("kid", 6001, kind="clip", file="/data/other/b.mp4")
    live, track, clip = list(sessions_xml(fake))
    assert live.get("live") == "1" and live.get("key").startswith("/livetv/sessions/")
    assert not {"grandparentKey", "grandparentRatingKey", "parentKey", "librarySectionID"} & set(live.attrib)
    assert live.find("Media").get("origin") == "livetv" and "file" not in live.find("Media/Part").attrib
    assert (track.tag, track.get("type"), track.find("Media/Part").get("file")) == ("Track", "track", "/data/music/a.flac")
    assert (clip.get("type"), clip.get("subtype")) == ("movie", "clip")


def test_a_session_can_come_without_a_user(fake):
    fake.start_session("kid", 101, no_user=True)
    assert sessions_xml(fake).find("Video/User") is None


def test_history_rows_of_deleted_items_have_no_rating_key(fake):
    fake.scenario.deleted_history.append({"user": "owner", "title": "Gone", "type": "movie",
                                          "viewed_at": fake.scenario.now, "section": 1})
    rows = list(ET.fromstring(get(fake, "/status/sessions/history/all?sort=viewedAt%3Adesc").content))
    gone = rows[0]
    assert gone.get("title") == "Gone" and gone.get("ratingKey") is None and gone.get("key") is None
    assert all(r.get("ratingKey") for r in rows[1:])


def test_episode_listings_name_their_library_only_on_the_container(fake):
    root = ET.fromstring(get(fake, "/library/sections/2/all?type=4&show.id=300").content)
    assert (root.get("librarySectionID"), root.get("librarySectionTitle")) == ("2", "TV Shows")
    episodes = list(root)
    assert len(episodes) == 4 and {e.get("grandparentRatingKey") for e in episodes} == {"300"}
    assert all(e.get("librarySectionID") is None for e in episodes)
    children = ET.fromstring(get(fake, "/library/metadata/210/children").content)
    assert children.get("librarySectionID") == "2" and children[0].get("librarySectionID") is None


def test_an_unpaged_answer_carries_only_its_size_which_is_the_total(fake):
    root = ET.fromstring(get(fake, "/status/sessions/history/all").content)
    assert root.get("size") == str(len(root)) and root.get("totalSize") is None
    # a query-parameter size without a start is ignored, as PMS ignores it
    root = ET.fromstring(get(fake, "/library/sections/1/all?X-Plex-Container-Size=1").content)
    assert len(root) == 3 and root.get("totalSize") is None


def test_plextv_users_list_the_servers_shared_with_them_and_home_users_are_managed(fake):
    fake.scenario.user("kid").restricted = True
    fake.scenario.user("friend").servers = ["another-server", fake.scenario.machine_identifier]
    users = {u.get("title"): u for u in ET.fromstring(
        requests.get(fake.url("plextv") + "/api/users/", headers={"X-Plex-Token": "OWNER-TOKEN"},
                     timeout=5).content)}
    assert (users["kid"].get("home"), users["kid"].get("restricted")) == ("1", "1")
    assert "home" not in users["friend"].attrib
    assert [s.get("machineIdentifier") for s in users["friend"].findall("Server")] == [
        "another-server", fake.scenario.machine_identifier]


def test_hidden_libraries_are_left_out_of_the_server_wide_on_deck(fake):
    fake.set_progress("owner", 101, 1000)
    fake.scenario.sections[0].hidden = 1
    keys = [v.get("ratingKey") for v in ET.fromstring(get(fake, "/library/onDeck").content)]
    assert "101" not in keys and keys
    assert [v.get("ratingKey") for v in ET.fromstring(get(fake, "/library/sections/1/onDeck").content)] == ["101"]


def test_a_windows_server_reports_windows_paths_that_paths_map_to_the_host(tmp_path):
    from cacherr.config.model import PathMapping
    from cacherr.testing.scenarios import with_windows_paths

    with FakePlex(with_windows_paths(Scenario.small_demo())) as fake:
        result = fake.select([Rule(name="new", select="recently_added", keep=KEEP)], tmp_path,
                             paths=(PathMapping(plex="M:\\Media", host="/mnt/user/media"),))
    assert [w.plex_path for w in result.wanted] == ["M:\\Media\\movies\\Second Movie (2019)\\Second Movie (2019).mkv"]
    assert [w.host_path for w in result.wanted] == ["/mnt/user/media/movies/Second Movie (2019)/Second Movie (2019).mkv"]
