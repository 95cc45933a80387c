"""Tiny offline models and synthetic tasks for the CPU demo and the tests."""
