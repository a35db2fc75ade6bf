"""Notifications through Apprise, including cacherr's own `unraid://` scheme."""
