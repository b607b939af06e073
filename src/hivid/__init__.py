"""HiVid Ops: the library behind the `hivid` CLI and the Prefect flows (never imports Prefect)."""

__version__ = "0.1.0"
