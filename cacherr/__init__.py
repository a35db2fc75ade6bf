"""cacherr: keeps the Plex media people are about to watch on a fast pool."""

__version__ = "0.1.0"
