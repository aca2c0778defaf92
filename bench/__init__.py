"""Benchmarks of tenant-lifecycle (issue 11): ``python -m bench`` / ``make bench``.

Every figure is measured beside its baseline in the same run on the same machine and printed
with the ratio between them; results go to ``bench/results/<name>.json``. See
``docs/performance.md`` for the last run and what the figures mean.
"""
