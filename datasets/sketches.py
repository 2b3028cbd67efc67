"""Small streaming sketches for profiling, vectorised with numpy (no Python loop per value).

- `hash_array`: a 64-bit hash of every value of an Arrow array (numbers by their bits, text by a
  polynomial hash over its UTF-8 bytes), finished with splitmix64 so the bits are well mixed.
- `KMVSketch`: "k minimum values" distinct-count estimate. It keeps the k smallest distinct hashes;
  with k = 4096 the estimate's relative standard error is about 1/sqrt(k - 2), 1.6 %.
- `BottomKSample`: a uniform sample without replacement of at most k values. Every value gets a
  random key and the k smallest keys are kept, which is a reservoir sample computed a batch at a
  time. Keys come from one seeded generator in value order, so the sample does not depend on how
  the values were cut into batches.
"""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_PRIME = np.uint64(0x100000001B3)
_TWO_64 = float(2**64)
# Text is hashed in slices of about this many bytes, so temporaries stay small whatever the batch.
_HASH_SLICE_BYTES = 1024 * 1024
_powers = np.ones(1, dtype=np.uint64)


def mix64(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser over a uint64 array (wrapping arithmetic is intended)."""
    x = values + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def _prime_powers(length: int) -> np.ndarray:
    global _powers
    if len(_powers) < length:
        table = np.full(max(length, 2 * len(_powers)), _PRIME, dtype=np.uint64)
        table[0] = 1
        _powers = np.cumprod(table, dtype=np.uint64)
    return _powers


def _hash_text(array: pa.Array) -> np.ndarray:
    """Polynomial hash of each string's bytes, mod 2**64, then mixed with its length."""
    count = len(array)
    offsets_type = (
        np.int64 if pa.types.is_large_string(array.type) or pa.types.is_large_binary(array.type) else np.int32
    )
    buffers = array.buffers()
    offsets = np.frombuffer(buffers[1], dtype=offsets_type)[array.offset : array.offset + count + 1].astype(np.int64)
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, dtype=np.uint8)
    lengths = np.diff(offsets)
    sums = np.zeros(count, dtype=np.uint64)
    # Cut into slices of about _HASH_SLICE_BYTES so the per-byte temporaries stay bounded.
    cuts = np.searchsorted(offsets, np.arange(offsets[0], offsets[-1], _HASH_SLICE_BYTES), side="right") - 1
    bounds = sorted({0, count, *(int(c) for c in cuts)})
    for lo, hi in itertools.pairwise(bounds):
        if hi <= lo:
            continue
        start, end = int(offsets[lo]), int(offsets[hi])
        if end == start:
            continue
        part_lengths = lengths[lo:hi]
        starts = offsets[lo:hi] - start
        owner = np.repeat(np.arange(hi - lo), part_lengths)
        position = np.arange(end - start) - starts[owner]
        powers = _prime_powers(int(part_lengths.max()))
        contribution = (data[start:end].astype(np.uint64) + np.uint64(1)) * powers[position]
        nonempty = part_lengths > 0
        sums[lo:hi][nonempty] = np.add.reduceat(contribution, starts[nonempty])
    return mix64(sums ^ mix64(lengths.astype(np.uint64)))


def hash_array(array: pa.Array) -> np.ndarray:
    """A uint64 hash per value of a null-free Arrow array (numbers, booleans, dates, times or text)."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        array = array.dictionary_decode()
        kind = array.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind):
        return _hash_text(array)
    if pa.types.is_large_binary(kind):
        return _hash_text(array)
    if pa.types.is_floating(kind):
        values = np.asarray(array.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64) + 0.0
        return mix64(values.view(np.uint64))  # + 0.0 makes -0.0 and 0.0 one value
    if pa.types.is_decimal(kind):
        return hash_array(array.cast(pa.float64()))
    if pa.types.is_temporal(kind) or pa.types.is_boolean(kind):
        width = pa.int64() if not pa.types.is_boolean(kind) else pa.int8()
        if pa.types.is_date32(kind) or pa.types.is_time32(kind):
            width = pa.int32()
        array = pc.cast(array.view(width) if not pa.types.is_boolean(kind) else array.cast(width), pa.int64())
    values = np.asarray(array.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
    return mix64(values.view(np.uint64))


class KMVSketch:
    """Distinct-count estimate from the k smallest distinct 64-bit hashes seen."""

    def __init__(self, k: int = 4096) -> None:
        self.k = k
        self.minimums = np.zeros(0, dtype=np.uint64)

    def add(self, hashes: np.ndarray) -> None:
        if len(hashes) == 0:
            return
        if len(self.minimums) >= self.k:
            hashes = hashes[hashes < self.minimums[-1]]  # most batches add nothing new: skip the sort
            if len(hashes) == 0:
                return
        self.minimums = np.unique(np.concatenate([self.minimums, hashes]))[: self.k]

    def estimate(self) -> int:
        if len(self.minimums) < self.k:
            return len(self.minimums)  # fewer than k distinct hashes: that is the count
        fraction = (float(self.minimums[-1]) + 1.0) / _TWO_64
        return round((self.k - 1) / fraction)

    @property
    def relative_error(self) -> float:
        return 1.0 / float(np.sqrt(self.k - 2))


class BottomKSample:
    """A uniform random sample of at most k values, kept as the values with the k smallest random keys."""

    def __init__(self, k: int, seed: int = 0) -> None:
        self.k = k
        self.rng = np.random.default_rng(seed)
        self.values = np.zeros(0, dtype=np.float64)
        self.keys = np.zeros(0, dtype=np.float64)
        self.seen = 0

    def add(self, values: np.ndarray) -> None:
        if len(values) == 0:
            return
        self.seen += len(values)
        keys = self.rng.random(len(values))
        if len(self.values) + len(values) <= self.k:
            self.values = np.concatenate([self.values, values])
            self.keys = np.concatenate([self.keys, keys])
            return
        if len(self.values) >= self.k:
            keep = keys < self.keys.max()
            values, keys = values[keep], keys[keep]
        all_values = np.concatenate([self.values, values])
        all_keys = np.concatenate([self.keys, keys])
        if len(all_keys) > self.k:
            chosen = np.argpartition(all_keys, self.k - 1)[: self.k]
            all_values, all_keys = all_values[chosen], all_keys[chosen]
        self.values, self.keys = all_values, all_keys

    @property
    def exact(self) -> bool:
        """True while the sample holds every value seen."""
        return self.seen <= self.k
