"""vragent: the configuration agent of a CloudStack virtual router."""

__version__ = "0.1.0"
