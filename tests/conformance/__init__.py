"""Conformance suites: one contract per engine interface, every implementation passes it."""
