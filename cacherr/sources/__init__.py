"""Plex, plex.tv and Trakt: what people are about to watch.

`select.select_all(config, state_dir, now)` runs one selection round and returns a
`types.SelectionResult` (wanted files, failed sources and the rules they touched,
warnings, request counts, per-source status). Control flows: `http.SourceSession` (URL
overrides, timeouts, retries, counts) -> `plex.PlexAdapter` (the only plexapi user; plexapi
objects become `types.Item`/`User`/`Session`) -> `users.resolve_users` (who, with which
tokens) -> one `select_*` function per selector (`picks` holds the pure choices, `trakt`
the Trakt client and GUID index) -> `pathmap.PathMapper` (Plex paths to host paths).
"""
