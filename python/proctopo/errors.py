"""Exceptions raised by proctopo.

Each class also subclasses the built-in exception that DeepSpeed's
``ProcessTopology`` raised (or would have raised) for the same mistake, so
``except`` clauses written for DeepSpeed keep working, and none of them relies
on ``assert`` (which ``python -O`` removes).

============================  =============================================  ==========================
class                         raised for                                     also an instance of
============================  =============================================  ==========================
ProctopoError                 base of everything below                       Exception
InvalidArgumentError          an argument that breaks a rule                 ValueError
InvalidTopologyError          axes and sizes that do not form a topology     ValueError
WorldSizeOverflowError        a world size past 2**63 - 1                    ValueError, OverflowError
UnknownAxisError              an axis name the topology does not have        ValueError, AttributeError,
                                                                             TypeError
CoordinateOutOfRangeError     a coordinate outside its axis                  ValueError, IndexError,
                                                                             AssertionError
RankOutOfRangeError           a rank outside ``[0, world_size)``             ValueError, IndexError
============================  =============================================  ==========================

The classes are created by the compiled core, which raises them directly.
"""

from ._core import (
    CoordinateOutOfRangeError,
    InvalidArgumentError,
    InvalidTopologyError,
    ProctopoError,
    RankOutOfRangeError,
    UnknownAxisError,
    WorldSizeOverflowError,
)

__all__ = [
    "CoordinateOutOfRangeError",
    "InvalidArgumentError",
    "InvalidTopologyError",
    "ProctopoError",
    "RankOutOfRangeError",
    "UnknownAxisError",
    "WorldSizeOverflowError",
]
