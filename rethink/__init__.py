"""rethink: randomization tests of deep-learning generalization (Zhang et al. 2017)."""

__version__ = "0.1.0"


class RethinkError(Exception):
    """An error a user can fix; its message is one line naming the thing and the fix."""
