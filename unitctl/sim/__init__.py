"""Deterministic cluster simulation: the real scheduler and agent decisions on a
virtual clock, with machine deaths and partitions (see :mod:`unitctl.sim.core`)."""

from unitctl.sim.core import InvariantViolation, SimConfig, SimResult, Simulation, simulate

__all__ = ["InvariantViolation", "SimConfig", "SimResult", "Simulation", "simulate"]
