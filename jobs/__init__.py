"""Open CDP: batch + stream lakehouse jobs. Importing this package is cheap (no Spark, no I/O)."""

__version__ = "0.1.0"
