"""Verification helpers: real backends and harness pieces used by tests, conformance runs and examples."""
