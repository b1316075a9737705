import numpy as np
import pytest

from zerocopy_gcn.graph import generate_rmat, load_graph, preset_spec


@pytest.fixture(scope="session")
def small_graph_dir(tmp_path_factory):
    """A small R-MAT graph folder shared by the tests that only read it."""
    folder = tmp_path_factory.mktemp("graphs") / "small"
    spec = preset_spec(
        "products_like",
        num_nodes=600,
        avg_degree=12,
        feat_dim=24,
        num_classes=5,
        split=(0.6, 0.2, 0.2),
        chunk_pairs=1000,
        seed=3,
    )
    generate_rmat(folder, spec, name="small", progress=False)
    return folder


@pytest.fixture()
def small_graph(small_graph_dir):
    return load_graph(small_graph_dir)


def _tiny_arrays():
    """Factory of fresh arrays; 4 nodes, hand-written CSR: 0<-1,2 ; 1<-0 ; 2<-0,1,3 ; 3<-(none)."""
    indptr = np.array([0, 2, 3, 6, 6], dtype=np.int64)
    indices = np.array([1, 2, 0, 0, 1, 3], dtype=np.int32)
    feat = np.arange(32, dtype=np.float32).reshape(4, 8)
    label = np.array([0, 1, 0, 1], dtype=np.int64)
    splits = {
        "train": np.array([0, 1], np.int64),
        "val": np.array([2], np.int64),
        "test": np.array([3], np.int64),
    }
    return indptr, indices, feat, label, splits


@pytest.fixture()
def tiny_arrays():
    return _tiny_arrays
