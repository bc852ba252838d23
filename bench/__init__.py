"""blaze_green benchmark suite: `python -m bench` (see bench/README.md)."""
