"""The mparticle_dest benchmark suite (issue 6): ``python -m benchmarks`` / ``nox -s bench``.

See ``docs/performance.md`` for the method and the latest figures.
"""
