"""Helpers for testing applications built on Hubbub (and Hubbub itself)."""

from hubbub.testing.server import RunningServer, running_server

__all__ = ["RunningServer", "running_server"]
