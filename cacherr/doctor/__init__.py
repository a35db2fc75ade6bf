"""`cacherr doctor`: checks of the host and an audit of the cache, each with its fix."""
