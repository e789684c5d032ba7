"""Helpers for testing against real servers (not imported by the package itself)."""
