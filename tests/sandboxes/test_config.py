"""The per-core defaults follow a container's or a pod's CPU limit, which CPU affinity does not show."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandboxes.config import cgroup_cpu_quota


@pytest.mark.parametrize(
    ("v2", "v1", "quota"),
    [
        pytest.param("max 100000\n", None, None, id="v2_unlimited"),
        pytest.param("250000 100000\n", None, 2.5, id="v2_two_and_a_half_cpus"),
        pytest.param(None, ("-1", "100000"), None, id="v1_unlimited"),
        pytest.param(None, ("400000", "100000"), 4.0, id="v1_four_cpus"),
        pytest.param("garbage", ("50000", "100000"), 0.5, id="unreadable_v2_falls_back_to_v1"),
        pytest.param(None, None, None, id="no_cgroup_files"),
    ],
)
def test_the_cgroup_cpu_quota(tmp_path: Path, v2: str | None, v1: tuple[str, str] | None, quota: float | None) -> None:
    cpu_max = tmp_path / "cpu.max"
    if v2 is not None:
        cpu_max.write_text(v2)
    cfs = tmp_path / "cpu"
    if v1 is not None:
        cfs.mkdir()
        (cfs / "cpu.cfs_quota_us").write_text(v1[0])
        (cfs / "cpu.cfs_period_us").write_text(v1[1])
    assert cgroup_cpu_quota(cpu_max, (cfs,)) == quota
