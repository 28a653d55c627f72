"""Shared fixtures for every test package (each package keeps its own conftest too)."""
