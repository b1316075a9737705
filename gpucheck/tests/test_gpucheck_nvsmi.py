import subprocess

import pytest

from gpucheck import nvsmi

# `nvidia-smi --query-gpu=index,name,memory.total,driver_version,pcie.link.gen.current,
#  pcie.link.gen.max,pcie.link.width.current,pcie.link.width.max --format=csv` on a
# 2-GPU machine: header with units, ", " separators, units on values, an idle link trained
# down to Gen1, and a field the board does not report.
CAPTURED = """\
index, name, memory.total [MiB], driver_version, pcie.link.gen.current, pcie.link.gen.max, \
pcie.link.width.current, pcie.link.width.max
0, NVIDIA H100 80GB HBM3, 81559 MiB, 550.90.07, 1, 5, 16, 16
1, NVIDIA A100-SXM4-40GB, 40960 MiB, 550.90.07, 4, 4, 16, [N/A]
"""


def test_parses_real_csv_format():
    rows = nvsmi.parse_csv(CAPTURED)
    assert [r["index"] for r in rows] == [0, 1]
    first = rows[0]
    assert first["name"] == "NVIDIA H100 80GB HBM3" and first["memory.total"] == 81559
    assert first["driver_version"] == "550.90.07"
    assert (first["pcie.link.gen.current"], first["pcie.link.gen.max"]) == (1, 5)
    assert rows[1]["pcie.link.width.max"] is None
    assert nvsmi.pcie_text(first) == "PCIe Gen1 x16 (max Gen5 x16)"
    assert nvsmi.pcie_text(rows[1]) == "PCIe Gen4 x16 (max Gen4 x?)"


def test_mismatched_line_is_an_error():
    with pytest.raises(ValueError, match="fields"):
        nvsmi.parse_csv("index, name\n0, a, b\n")
    assert nvsmi.parse_csv("") == []


def test_query_reports_why_it_has_nothing(monkeypatch):
    monkeypatch.setattr(nvsmi.shutil, "which", lambda name: None)
    assert nvsmi.query() == ([], "nvidia-smi not found")
    monkeypatch.setattr(nvsmi.shutil, "which", lambda name: "/usr/bin/nvidia-smi")

    def refuses(command, **kwargs):
        assert command[1].startswith("--query-gpu=index,name,") and command[2] == "--format=csv"
        return subprocess.CompletedProcess(
            command, 6, "", "Field 'pcie.link.gen.max' is not a valid field to query."
        )

    rows, why = nvsmi.query(run=refuses)
    assert rows == [] and "not a valid field" in why

    def answers(command, **kwargs):
        return subprocess.CompletedProcess(command, 0, CAPTURED, "")

    rows, why = nvsmi.query(run=answers)
    assert why is None and rows[0]["name"].startswith("NVIDIA H100")
