"""io.claimed.ClaimedNames on its own: an ordered set of names that holds regular .flo names as bits."""

from __future__ import annotations

import tracemalloc

from semflow.io.claimed import ClaimedNames, flo_number


def test_names_are_held_once_in_the_order_first_added() -> None:
    names = ClaimedNames(["flo/", "flo/000007.flo"])
    added = [names.add(name) for name in ("flo/000008.flo", "flow.mp4", "flo/000007.flo", "flow.mp4", "flo/000001.flo",
                                          "flo/000009.flo", "flo/000002.flo")]
    assert added == [True, True, False, False, True, True, True]
    assert list(names) == ["flo/", "flo/000007.flo", "flo/000008.flo", "flow.mp4", "flo/000001.flo", "flo/000009.flo",
                           "flo/000002.flo"]
    assert len(names) == 7
    assert "flo/000008.flo" in names and "flow.mp4" in names and "flo/" in names
    assert "flo/000003.flo" not in names and "flo/000100000.flo" not in names and "panel.mp4" not in names
    assert 8 not in names and None not in names  # (not a name: not held, no error)


def test_a_flo_name_of_another_spelling_stays_as_it_was_given() -> None:
    """Only flo/NNNNNN.flo as runstore writes it (six digits, more past 999999) is a pair number; a name of
    thousands of digits is a string too (int() refuses over 4300 digits)."""
    odd = ["flo/0000005.flo", "flo/01.flo", "flo/" + "1" * 5000 + ".flo", "flo/000005.flo.tmp"]
    assert [flo_number(name) for name in odd] == [None] * 4
    assert flo_number("flo/000005.flo") == 5 and flo_number("flo/1234567.flo") == 1234567
    names = ClaimedNames(odd)
    assert list(names) == odd and all(name in names for name in odd) and "flo/000005.flo" not in names


def test_a_far_pair_number_is_held_as_a_name_not_as_a_bitmap_up_to_it() -> None:
    names = ClaimedNames(["flo/000000.flo"])
    tracemalloc.start()
    try:
        names.add(f"flo/{10**8:06d}.flo")  # (a bitmap to it: 12.5 MB)
        held = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert held < 100_000
    assert list(names) == ["flo/000000.flo", "flo/100000000.flo"] and "flo/100000000.flo" in names


def test_consecutive_flo_names_are_held_as_one_run_each_way_they_arrive() -> None:
    """A run of 20000 pairs claimed in order takes a few bytes, not an object a name; a gap starts a new run."""
    tracemalloc.start()
    try:
        names = ClaimedNames(f"flo/{k:06d}.flo" for k in range(20000))
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held < 20000 // 2, f"{held / 20000:.1f} bytes a name"
    names.add("flo/020005.flo")
    names.add("flo/020000.flo")
    assert list(names)[-3:] == ["flo/019999.flo", "flo/020005.flo", "flo/020000.flo"] and len(names) == 20002
    assert all(f"flo/{k:06d}.flo" in names for k in (0, 7, 8, 15, 16, 19999, 20000, 20005))
    assert not any(f"flo/{k:06d}.flo" in names for k in (20001, 20004, 20006, 20008, 10**6))
