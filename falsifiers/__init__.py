"""Falsifiers: small functions, one module per contract, each trying to break one invariant.

A falsifier returns None when the invariant held and raises AssertionError (with the
counterexample in its message) when it found a violation. Any other exception means the
falsifier itself broke. This package is the only bridge between `harness` and `pretrain`.
"""
