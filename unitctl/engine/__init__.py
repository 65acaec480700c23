"""The leader-elected engine: places units on machines."""

from unitctl.engine.engine import Engine, RoundResult

__all__ = ["Engine", "RoundResult"]
