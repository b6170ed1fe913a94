"""Which engine runs: the native core where it can, the Python path otherwise, said and forced."""

from __future__ import annotations

import pytest

from csvkafka_worker.engine import choose
from csvkafka_worker.errors import ConfigError
from csvkafka_worker.options import EngineChoice
from csvkafka_worker.records import Dialect
from tests.unit.csv_engines import NATIVE, NATIVE_MISSING

needs_native = pytest.mark.skipif(NATIVE is None, reason=NATIVE_MISSING)


@needs_native
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "ascii", "latin-1", "cp1252"])
def test_auto_picks_the_native_core_for_the_encodings_it_reads(encoding: str) -> None:
    engine, why = choose(EngineChoice.AUTO, Dialect(), encoding)
    assert (engine.name, why) == ("native", "the native core")


def test_python_is_forced_and_says_so() -> None:
    engine, why = choose(EngineChoice.PYTHON, Dialect(), "utf-8")
    assert (engine.name, why) == ("python", "--engine python")


def test_an_encoding_the_core_does_not_read_falls_back_and_says_why() -> None:
    engine, why = choose(EngineChoice.AUTO, Dialect(), "cp1251")
    assert engine.name == "python"
    assert "cp1251" in why and "the Python path runs instead" in why


def test_forcing_the_native_core_where_it_cannot_run_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match=r"--engine native cannot run here: .*cp1251.*use --engine auto or python"):
        choose(EngineChoice.NATIVE, Dialect(), "cp1251")
