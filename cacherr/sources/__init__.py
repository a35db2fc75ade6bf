"""Plex, plex.tv and Trakt: what people are about to watch.

`select.select_all(config, state_dir, now)` runs one selection round and returns a
`types.SelectionResult` (wanted files, failed sources and the rules they touched,
warnings, request counts, per-source status). Control flows: `http.SourceSession` (URL
overrides, timeouts, retries, counts) -> `plex.PlexAdapter` (with `plextv.py` and
`errors.py` the only plexapi users; `convert` reads each XML element into `types.Item`,
`HistoryEntry`..., `sessions` resolves live sessions to the files they read) ->
`users.resolve_users` (who, with which tokens, who is active) -> one function per
selector in `selectors` (`picks` holds the pure choices, `trakt` the Trakt client and GUID
index) -> `round.Round.resolve` (the batched fetches every rule's needs share) ->
`pathmap.PathMapper` (Plex paths to host paths).
"""

import os

# Isolate plexapi from a developer's own config file: set before any module here imports it.
os.environ.setdefault("PLEXAPI_CONFIG_PATH", os.devnull)
