"""Test helpers, imported by the tests that need them (not from conftest)."""
