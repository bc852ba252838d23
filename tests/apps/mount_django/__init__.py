"""A small Django project (settings, urls, views) for tests/test_mount.py."""
