"""warp.magnitude, channel_sum and channel_mean: the same bits as numpy's own reductions, which they replace
for speed (flows and labels of every method must not move by a bit)."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from semflow.warp import channel_mean, channel_sum, magnitude

SPECIAL = st.sampled_from([0.0, -0.0, 1e-45, -1e-45, 1e30, -1e30, 3.4e38, np.inf, -np.inf, np.nan, 1.0, -1.0])


def arrays(channels: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
    floats = st.one_of(SPECIAL, st.floats(width=32, allow_nan=True, allow_infinity=True))
    return st.sampled_from([np.float32, np.float64]).flatmap(lambda dtype: st.sampled_from(channels).flatmap(
        lambda c: hnp.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6).map(lambda s: (*s, c)),
                             elements=floats)))


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """The same dtype, shape and bits, but for which NaN a NaN is: where two NaNs of different sign or payload
    meet, which one comes out is the operands' order, and numpy's reductions changed theirs between releases
    (numpy 2.0's norm of (NaN, -NaN) is NaN, 2.4's -NaN); any NaN reads as NaN, so only where they are counts."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    a, b = np.array(a, copy=True), np.array(b, copy=True)
    if a.dtype.kind == "f":
        nan_a, nan_b = np.isnan(a), np.isnan(b)
        if not np.array_equal(nan_a, nan_b):
            return False
        a[nan_a], b[nan_b] = np.nan, np.nan  # (one NaN for all)
    return a.tobytes() == b.tobytes()


@settings(max_examples=300, deadline=None)
@given(arrays((2, 3)), st.booleans())
def test_channel_sum_and_mean_are_numpys_bit_for_bit(array: np.ndarray, crop: bool) -> None:
    array = array[1:] if crop and len(array) > 1 else array  # (a view that does not start at its buffer)
    with np.errstate(all="ignore"):  # (inf - inf, overflow: on both sides alike)
        assert same_bits(channel_sum(array), array.sum(-1))
        assert same_bits(channel_mean(array), array.mean(-1))


def test_a_sum_of_negative_zeros_is_positive_zero_as_numpys() -> None:
    zeros = np.full((2, 3), -0.0, np.float32)
    assert not np.signbit(zeros.sum(-1)).any()
    assert not np.signbit(channel_sum(zeros)).any() and not np.signbit(channel_sum(zeros[:, :2])).any()


@settings(max_examples=300, deadline=None)
@given(arrays((2,)))
def test_magnitude_is_numpys_norm_bit_for_bit(vectors: np.ndarray) -> None:
    with np.errstate(all="ignore"):
        assert same_bits(magnitude(vectors), np.linalg.norm(vectors, axis=-1))


def test_other_lengths_and_dtypes_are_numpys_own() -> None:
    rng = np.random.default_rng(0)
    for array in (rng.standard_normal((4, 5, 8)).astype(np.float32), rng.integers(0, 255, (4, 5, 3), np.uint8)):
        assert same_bits(channel_sum(array), array.sum(-1)) and same_bits(channel_mean(array), array.mean(-1))


def test_other_lengths_and_dtypes_are_numpys_own_bit_for_bit() -> None:
    """Four channels (RGBA), one, and float16 (whose mean numpy takes in float32) are numpy's own reductions."""
    rng = np.random.default_rng(1)
    values = rng.standard_normal((50, 4)) * 100
    for array in (values.astype(np.float32), values[:, :1].astype(np.float64), values[:, :3].astype(np.float16)):
        assert same_bits(channel_sum(array), array.sum(-1)), array.dtype
        assert same_bits(channel_mean(array), array.mean(-1)), array.dtype


def test_the_magnitude_of_integer_vectors_is_a_float() -> None:
    vectors = np.array([[3, 4], [-5, 12], [0, 0]], np.int32)
    assert same_bits(magnitude(vectors), np.linalg.norm(vectors, axis=-1))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([np.bool_, np.uint8, np.int8, np.int16, np.uint16, np.int32, np.int64]).flatmap(
    lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6).map(lambda s: (*s, 2)))))
@example(np.array([[200, 0], [0, 255]], np.uint8))
@example(np.array([[300, 400], [-32768, 0]], np.int16))
def test_the_magnitude_of_integer_vectors_is_numpys_norm_without_overflow(vectors: np.ndarray) -> None:
    """Integer components were squared in their own dtype: a uint8 or int16 flow's 200 * 200 wrapped round
    (|(200, 0)| read 64 as uint8) where np.linalg.norm, which squares in float64, did not."""
    assert same_bits(magnitude(vectors), np.linalg.norm(vectors, axis=-1))


def test_a_length_of_float_and_integer_components_squares_the_integers_in_float64() -> None:
    """length(u, v) with only one integer component: it is squared in float64 too (int16's 200 * 200 wraps)."""
    from semflow.warp import length

    u, v = np.array([0.0, 3.0], np.float32), np.array([200, 4], np.int16)
    np.testing.assert_array_equal(length(u, v), [200.0, 5.0])
    np.testing.assert_array_equal(length(v, u), [200.0, 5.0])
