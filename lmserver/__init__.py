"""lmserver: a self-hosted LIVE Manager for live shopping."""

__version__ = "0.1.0"
