"""Plex, plex.tv and Trakt: what people are about to watch (see `select.select_all`)."""
