"""Tests of the protocol sources (collector/sources)."""
