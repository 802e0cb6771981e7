"""Result codes: the verdicts jobs write to ``result_code``.

They are data, never exceptions. :class:`ResultCode` is a ``str`` enum, so
``ResultCode.OK == 'OK'`` and a code serialises to JSON as its plain name.
"""

from __future__ import annotations

import enum

__all__ = ["ResultCode", "OK", "WA", "RE", "TLE", "MLE", "OLE", "RV", "SE", "CE"]


class ResultCode(str, enum.Enum):
    """The result codes of the original sioworkers, with their meaning."""

    #: accepted / success
    OK = "OK"
    #: wrong answer (checker, interactive)
    WA = "WA"
    #: runtime error: a non-zero exit status or a signal
    RE = "RE"
    #: CPU, virtual or real time limit exceeded
    TLE = "TLE"
    #: memory limit exceeded
    MLE = "MLE"
    #: output limit exceeded
    OLE = "OLE"
    #: rule violation: a forbidden system call
    RV = "RV"
    #: system error: the supervisor itself failed
    SE = "SE"
    #: compilation error (or the compiled program is too large)
    CE = "CE"

    def __str__(self) -> str:
        return self.value


OK = ResultCode.OK
WA = ResultCode.WA
RE = ResultCode.RE
TLE = ResultCode.TLE
MLE = ResultCode.MLE
OLE = ResultCode.OLE
RV = ResultCode.RV
SE = ResultCode.SE
CE = ResultCode.CE
