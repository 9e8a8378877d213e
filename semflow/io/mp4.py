"""The boxes of an mp4/mov (ISO BMFF) file: the one reading of a box's header that the checks of a
written video (:func:`~semflow.io.ffmpeg.mp4_complete`) and the index reader of a seek
(:mod:`semflow.io.seek`) share."""

from __future__ import annotations


def box_header(head: bytes, room: int) -> tuple[bytes, int, int]:
    """(type, header length, size in bytes) of the box whose first bytes are ``head`` (16 of them where
    there are as many) and which has ``room`` bytes to the end of its parent or file. A size of 1 says a
    64-bit size follows; 0, that the box runs to the end. ValueError for a header cut short, a size
    smaller than the header, or a box past the end."""
    if len(head) < 8:
        raise ValueError("a box header cut short")
    size, kind, length = int.from_bytes(head[:4], "big"), head[4:8], 8
    if size == 1:
        if len(head) < 16:
            raise ValueError("a 64-bit box size cut short")
        size, length = int.from_bytes(head[8:16], "big"), 16
    elif size == 0:
        size = room
    if size < length or size > room:
        raise ValueError("a box smaller than its header, or past its end")
    return kind, length, size
