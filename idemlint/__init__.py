"""idemlint: find background jobs that are not safe to retry.

The analyzer lives in the submodules; importing this package stays cheap so
that ``idemlint.runtime`` can be used in workers without pulling in libcst.
"""

__version__ = "0.1.0"
