"""harness: compiles YAML contracts into falsifiers, runs them with pytest, records evidence per commit.

It is a general tool and imports nothing from the systems it verifies.
"""

__version__ = "0.1.0"
