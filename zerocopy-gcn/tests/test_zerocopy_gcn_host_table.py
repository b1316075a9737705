import os
import shutil
from collections import namedtuple

import numpy as np
import pytest
import torch

from trilab.distributed import DistContext
from zerocopy_gcn.fetch import make_fetcher
from zerocopy_gcn.graph import load_graph
from zerocopy_gcn.host_table import HostTableError, share_graph_arrays


def test_shared_copy_equals_the_folder_and_leaves_no_name_behind(small_graph_dir, tmp_path):
    graph = load_graph(small_graph_dir)
    shared, identity = share_graph_arrays(graph, DistContext(), root=tmp_path)
    assert list(tmp_path.iterdir()) == []  # unlinked once mapped; the mappings stay valid
    for name in ("feat", "indptr", "indices"):
        np.testing.assert_array_equal(getattr(shared, name), getattr(graph, name))
        assert identity[name]["bytes"] == getattr(graph, name).nbytes
        assert identity[name]["path"].startswith(str(tmp_path / "zerocopy-gcn-"))
    assert len({entry["inode"] for entry in identity.values()}) == 3
    np.testing.assert_array_equal(shared.label, graph.label)  # small arrays are untouched
    fetcher = make_fetcher("conventional", shared.feat_tensor(), "cpu")
    ids = torch.tensor([5, 0, 599, 5])
    torch.testing.assert_close(fetcher.fetch(ids), graph.feat_tensor()[ids])
    fetcher.close()


def test_shared_memory_is_really_shared_memory(small_graph_dir):
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm on this system")
    shared, identity = share_graph_arrays(load_graph(small_graph_dir), DistContext())
    maps = open("/proc/self/maps").read()
    names = [
        line.split()[-2]
        for line in maps.splitlines()
        if "/dev/shm/zerocopy-gcn-" in line and line.endswith("(deleted)")
    ]
    assert any(name.endswith("-feat.bin") for name in names)
    assert shared.feat.shape == load_graph(small_graph_dir).feat.shape


def test_too_little_shared_memory_is_a_clear_error(small_graph_dir, tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(100, 90, 10))
    with pytest.raises(HostTableError, match=r"need .* GiB in .* only .*shm-size"):
        share_graph_arrays(load_graph(small_graph_dir), DistContext(), root=tmp_path)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(HostTableError, match="does not exist"):
        share_graph_arrays(load_graph(small_graph_dir), DistContext(), root=tmp_path / "missing")
