"""`cacherr init`: starter rules files, and conversion of other tools' settings.

`from_env` reads a Cacherr/PlexCacheUltra `.env`, `from_plexcache` a PlexCache or
PlexCache-R `plexcache_settings.json`; both fill a `draft.Draft`, which `plex_library`
completes with Plex's library folders when Plex answers, and `draft.render` writes as
commented YAML. Taking over files a PlexCache install already cached (and its
`.plexcached` backups) is not done here: that needs the file engine and the ledger.
"""
