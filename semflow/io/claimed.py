"""The names a run claims in its output folder (its manifest), in the order claimed, held compactly.

A long ``--save-flo`` run claims one ``flo/NNNNNN.flo`` name a pair: held as strings in a list and a set
they took about 225 bytes a pair for the whole run (and showed in its peak memory). Here those regular
names are held as runs of consecutive pair numbers (a list of a few ``range``s in the order claimed) and a
bitmap of the numbers claimed (one bit a pair); any other name stays a string.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

_FLO = re.compile(r"flo/(\d{6,12})\.flo")
"""A pair's .flo name (``runstore.pair_name``: six digits, more past 999999)."""


def flo_number(name: str) -> int | None:
    """The pair number of a regular ``flo/NNNNNN.flo`` name (the one name that number is written as), else None."""
    found = _FLO.fullmatch(name)
    if found is None:
        return None
    number = int(found[1])
    return number if f"flo/{number:06d}.flo" == name else None


class ClaimedNames:
    """An ordered set of relative names (``"flo/"``, ``"flo/000003.flo"``, ``"flow.mp4"``...): iterating
    gives each once, in the order first added."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._order: list[str | range] = []  # a name, or a run of consecutive .flo pair numbers
        self._others: set[str] = set()  # the names not held in the bitmap
        self._bits = bytearray()  # bit k: flo/{k:06d}.flo is claimed
        self._count = 0
        for name in names:
            self.add(name)

    def __len__(self) -> int:
        return self._count

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._holds(name, flo_number(name))

    def __iter__(self) -> Iterator[str]:
        for part in self._order:
            if isinstance(part, str):
                yield part
            else:
                yield from (f"flo/{number:06d}.flo" for number in part)

    def add(self, name: str) -> bool:
        """Add ``name`` (last in the order); returns whether it was new."""
        number = flo_number(name)
        if self._holds(name, number):
            return False
        self._count += 1
        # (the bitmap takes at most 4 KiB + 2 bytes a name held: a listed flo/999999999.flo stays a string)
        if number is not None and number < 8 * (4096 + 2 * self._count):
            if number >= 8 * len(self._bits):
                self._bits.extend(bytes(number // 8 + 1 - len(self._bits)))
            self._bits[number // 8] |= 1 << (number % 8)
            last = self._order[-1] if self._order else None
            if isinstance(last, range) and last.stop == number:
                self._order[-1] = range(last.start, number + 1)
            else:
                self._order.append(range(number, number + 1))
            return True
        self._others.add(name)
        self._order.append(name)
        return True

    def _holds(self, name: str, number: int | None) -> bool:
        """Whether ``name`` (of pair ``number`` when a regular .flo name: :func:`flo_number`) is held."""
        return name in self._others or (number is not None and self._has_bit(number))

    def _has_bit(self, number: int) -> bool:
        return number < 8 * len(self._bits) and bool(self._bits[number // 8] >> (number % 8) & 1)
