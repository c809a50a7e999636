"""Numbers, money, percentages and dates as a reader of the memo's language writes them.

English: ``EUR 1,234,567``, ``12.5 %``, ``Apr 2016``.  Dutch: ``EUR 1.234.567``, ``12,5 %``,
``april 2016`` (a thousands point, a decimal comma, month names in full).  Only the memo uses
these; every file sibsim writes for machines (CSV, JSON) keeps plain numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Languages a memo can be written in.
LANGUAGES = ("en", "nl")

_MONTHS = {
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
    "nl": ("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september", "oktober",
           "november", "december"),
}
_LONG_MONTHS = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"),
    "nl": _MONTHS["nl"],
}


def _finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class Locale:
    """How one language writes numbers and dates.

    Parameters
    ----------
    language : str
        ``"en"`` or ``"nl"``.
    """

    language: str = "en"

    def __post_init__(self):
        if self.language not in LANGUAGES:
            raise ValueError(f"language: must be one of {', '.join(LANGUAGES)}, got {self.language!r}")

    @property
    def dutch(self) -> bool:
        return self.language == "nl"

    @property
    def not_available(self) -> str:
        return "n.v.t." if self.dutch else "n/a"

    def number(self, value: float, decimals: int = 0) -> str:
        """``1,234.5`` (en) or ``1.234,5`` (nl); never ``-0``."""
        if not _finite(value):
            return self.not_available
        value = round(float(value), decimals) + 0.0
        text = f"{value:,.{decimals}f}"
        if self.dutch:
            text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
        return text

    def money(self, value: float, currency: str, decimals: int = 0) -> str:
        """``EUR 1,234`` / ``EUR 1.234``; negative ``-EUR 1,234``."""
        if not _finite(value):
            return self.not_available
        value = round(float(value), decimals) + 0.0
        sign = "-" if value < 0 else ""
        return f"{sign}{currency} {self.number(abs(value), decimals)}"

    def percent(self, value: float, decimals: int = 1) -> str:
        """A share or rate as a percentage: ``12.5 %`` / ``12,5 %``."""
        if not _finite(value):
            return self.not_available
        return f"{self.number(float(value) * 100, decimals)} %"

    def month(self, year: int, month0: int, long: bool = False) -> str:
        """A calendar month (``month0`` 0-11): ``Apr 2016`` / ``april 2016``."""
        names = _LONG_MONTHS if long else _MONTHS
        return f"{names[self.language][month0]} {year}"

    def date(self, year: int, month: int, day: int) -> str:
        """A date: ``1 December 2026`` / ``1 december 2026``."""
        return f"{day} {_LONG_MONTHS[self.language][month - 1]} {year}"
