"""The package version (one place, read by results' metadata and policy files)."""

__version__ = "0.1.0"
