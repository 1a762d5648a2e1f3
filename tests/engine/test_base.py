"""The engine seam's command-line values."""

from __future__ import annotations

import pytest

from fundtrail.engine.base import EngineSpec, engine_spec
from fundtrail.errors import UsageError


def test_engine_spec_parses_the_options():
    assert engine_spec() == EngineSpec("embedded", "local[*]", ())
    s = engine_spec("Spark", "spark://h:7077", ["spark.executor.memory=4g", "a.b = c=d"])
    assert s.distributed and s.master == "spark://h:7077"
    assert s.conf == (("spark.executor.memory", "4g"), ("a.b", "c=d"))


@pytest.mark.parametrize("args", [("flink",), ("spark", None, ["novalue"]), ("embedded", None, ["a=b"])])
def test_engine_spec_names_the_bad_option(args):
    with pytest.raises(UsageError, match="--engine|--spark-conf"):
        engine_spec(*args)
