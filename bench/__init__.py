"""Benchmarks and experiments of leadtier; run them with ``python -m bench`` (``make bench``).

Not part of the installed package: this folder sits beside it in the repository.
"""
