"""The pose-file fuzzers at full size (slow: ~3 minutes): 12 000 mutated JSON and 3 000 mutated
NPZ files, seeded; every one loads or is refused with holdpose's own error, none hangs, and none
needs more than 4 GiB of address space (the fuzzer's cap: beyond it an allocation fails and counts).
A quick run of each is in the default suite."""

import pytest

from posefile_fuzz import fuzz


def _assert_promise_kept(result):
    assert result["non_holdpose_exceptions"] == 0, result["examples"]
    assert result["invalid_accepted"] == 0, result["examples"]
    assert result["hangs_over_5s"] == 0


@pytest.mark.parametrize("kind, count", [("json", 300), ("npz", 200)])
def test_a_quick_fuzz(kind, count):
    _assert_promise_kept(fuzz(kind, count, seed=7))


@pytest.mark.slow
@pytest.mark.parametrize("kind, count", [("json", 12000), ("npz", 3000)])
def test_the_full_fuzz(kind, count):
    result = fuzz(kind, count, seed=0)
    assert sum(result["outcomes"].values()) == count
    _assert_promise_kept(result)
