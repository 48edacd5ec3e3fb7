"""Shared test fixtures and fakes (registered through tests/conftest.py `pytest_plugins`)."""
