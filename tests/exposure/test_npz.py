"""The index's .npz reader (no CRC pass)."""

from __future__ import annotations

import numpy as np
import pytest

from fundtrail.exposure.npz import read_npz

ARRAYS = {"key": np.arange(1000, dtype=np.uint64) * 7, "half": np.array([1.5, -2.25]),
          "matrix": np.arange(12, dtype=np.uint8).reshape(3, 4), "empty": np.empty(0, np.int32)}


def _same(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and np.array_equal(a[k], b[k]), k


def test_read_npz_equals_np_load(tmp_path):
    np.savez(tmp_path / "a.npz", **ARRAYS)
    _same(read_npz(tmp_path / "a.npz"), ARRAYS)
    np.savez_compressed(tmp_path / "b.npz", **ARRAYS)  # compressed members: read through np.load
    _same(read_npz(tmp_path / "b.npz"), ARRAYS)


def test_a_truncated_npz_is_an_error_not_an_array(tmp_path):
    np.savez(tmp_path / "a.npz", **ARRAYS)
    data = (tmp_path / "a.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(Exception):  # noqa: B017 - zipfile's or the reader's error, never a short array
        read_npz(tmp_path / "cut.npz")

