"""`python -m blaze_green run module:app` works like the `blaze-green` console script."""

from blaze_green.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
