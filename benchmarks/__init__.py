"""Side-by-side benchmark of netns_kit against other ways to build container networks.

Run everything (inside a throwaway namespace) with::

    bash scripts/sandbox.sh .venv/bin/python -m benchmarks.run          # N = 50, 200, 1000
    bash scripts/sandbox.sh .venv/bin/python -m benchmarks.run --quick  # N = 20, smoke test

See docs/performance.md for what is measured and the figures of a real run.
"""
