"""Hostile and mistaken input to graph conversion and loading: one-line errors naming the file
and the value at fault, nothing half-written left behind, and bounded memory whatever a small
file declares."""

import errno
import gzip
import json
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from zerocopy_gcn.graph import GraphFormatError, convert_npz, convert_ogb_node_folder, load_graph
from zerocopy_gcn.graph.csr import save_graph
from zerocopy_gcn.graph.npz_stream import NpyWriter


def _write_gz(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as handle:
        handle.write(text)


def _ogb_folder(
    root,
    edges="0,1\n0,2\n1,2\n3,2\n",
    labels="0\n1\nnan\n1\n",
    train="0\n1\n",
    valid="3\n",
    test="1\n",
    feat=None,
):
    raw = root / "raw"
    _write_gz(raw / "edge.csv.gz", edges)
    _write_gz(
        raw / "node-feat.csv.gz",
        feat if feat is not None else "".join(f"{r}.0,{r}.5,1.0\n" for r in range(4)),
    )
    _write_gz(raw / "node-label.csv.gz", labels)
    _write_gz(raw / "num-node-list.csv.gz", "4\n")
    for name, ids in (("train", train), ("valid", valid), ("test", test)):
        _write_gz(root / "split" / "sales_ranking" / f"{name}.csv.gz", ids)
    return root


def _npz(path, **overrides):
    arrays = {
        "edge_index": np.array([[0, 1, 1, 3], [1, 2, 0, 2]]),
        "feat": np.ones((4, 3), np.float32),
        "label": np.array([0, 1, 1, 0]),
        "train_idx": np.array([0, 1]),
        "val_idx": np.array([2]),
        "test_idx": np.array([3]),
    }
    arrays.update(overrides)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def _left_behind(folder):
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name)


def _cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "zerocopy_gcn.graph.convert", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def _assert_user_error(result, *names):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    # progress bars may come first; the message itself is one or two lines at the end
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    starts = [
        i for i, line in enumerate(lines) if line.startswith("zerocopy_gcn.graph.convert: error: ")
    ]
    assert len(starts) == 1 and len(lines) - starts[0] <= 2, result.stderr
    message = "\n".join(lines[starts[0] :])
    for name in names:
        assert str(name) in message, result.stderr


# 1. the converter's command line reports user errors in one line with status 2


def test_cli_missing_input_existing_output_and_bad_ids_are_one_line_errors(tmp_path):
    _assert_user_error(_cli("npz", tmp_path / "nothere.npz", tmp_path / "o1"), "nothere.npz")
    good = _npz(tmp_path / "good.npz")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    _assert_user_error(_cli("npz", good, tmp_path / "taken"), "taken", "not empty")
    bad = _npz(tmp_path / "bad.npz", edge_index=np.array([[0, 1], [1, 9]]))
    _assert_user_error(_cli("npz", bad, tmp_path / "o2"), "bad.npz", "9")
    root = _ogb_folder(tmp_path / "ogbn_toy", edges="src,dst\n0,1\n")
    _assert_user_error(_cli("ogb", root, tmp_path / "o3"), "edge.csv.gz", "line 1")
    _assert_user_error(_cli("rmat", "no_such_preset", tmp_path / "o4"), "no_such_preset")
    assert not any((tmp_path / name).exists() for name in ("o1", "o2", "o3", "o4"))
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"
    assert _left_behind(tmp_path) == []


# 2. OGB CSV files and npz files that are not what they claim


@pytest.mark.parametrize(
    "overrides,file,message",
    [
        ({"edges": "src,dst\n0,1\n"}, "edge.csv.gz", r"line 1: 'src' is not a number \(a header"),
        ({"labels": "0\ncat\nnan\n1\n"}, "node-label.csv.gz", "line 2: 'cat' is not a number"),
        ({"train": "0\n1.5\n"}, "train.csv.gz", "line 2: '1.5' is not an integer"),
        ({"edges": "0,1\n3.7,2\n"}, "edge.csv.gz", "line 2: '3.7' is not an integer"),
        ({"edges": "0,1\n100000000000000000000,2\n"}, "edge.csv.gz", "does not fit"),
        ({"feat": "1.0,2.0\n3.0\n4,5\n6,7\n"}, "node-feat.csv.gz", "line 2 holds 1"),
    ],
)
def test_malformed_csv_names_the_file_and_line(tmp_path, overrides, file, message):
    root = _ogb_folder(tmp_path / "ogbn_toy", **overrides)
    with pytest.raises(GraphFormatError, match=message) as info:
        convert_ogb_node_folder(root, tmp_path / "out", progress=False)
    assert file in str(info.value)
    assert not (tmp_path / "out").exists() and _left_behind(tmp_path) == []


def test_integral_float_ids_are_still_ids(tmp_path):
    root = _ogb_folder(tmp_path / "ogbn_toy", edges="0.0,1.0\n0,2\n1,2\n3,2\n", train="0.0\n1\n")
    graph = load_graph(convert_ogb_node_folder(root, tmp_path / "out", progress=False))
    assert graph.splits["train"].tolist() == [0, 1] and graph.num_edges == 8


def test_truncated_and_fake_gzip_files_are_named(tmp_path):
    root = _ogb_folder(
        tmp_path / "ogbn_toy", edges="".join(f"{i % 4},{(i + 1) % 4}\n" for i in range(5000))
    )
    edge = root / "raw" / "edge.csv.gz"
    edge.write_bytes(edge.read_bytes()[:-40])  # a cut-off download
    with pytest.raises(GraphFormatError, match="edge.csv.gz: unreadable: truncated"):
        convert_ogb_node_folder(root, tmp_path / "out", progress=False)
    (root / "raw" / "node-label.csv.gz").write_text("0\n1\nnan\n1\n")  # not compressed
    with pytest.raises(GraphFormatError, match="node-label.csv.gz: unreadable: not gzip"):
        convert_ogb_node_folder(root, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists() and _left_behind(tmp_path) == []


def test_npz_with_object_arrays_or_garbage_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(
        path,
        edge_index=np.array([[0], [1]]),
        feat=np.ones((2, 2), np.float32),
        label=np.array([0, 1]),
        train_idx=np.array([0, {"x": 1}], dtype=object),
        val_idx=np.array([1]),
        test_idx=np.array([1]),
    )
    with pytest.raises(GraphFormatError, match="objects.npz:train_idx: object arrays"):
        convert_npz(path, tmp_path / "out", progress=False)
    (tmp_path / "text.npz").write_text("edge_index,feat\n")
    with pytest.raises(GraphFormatError, match="text.npz: not a readable .npz"):
        convert_npz(tmp_path / "text.npz", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


# 3. input that used to convert into silent garbage


@pytest.mark.parametrize("dtype", [np.uint8, np.int64])
def test_integer_masks_are_read_as_masks_not_as_ids(tmp_path, dtype):
    path = _npz(
        tmp_path / "g.npz",
        train_idx=None,
        val_idx=None,
        test_idx=None,
        train_mask=np.array([1, 1, 0, 0], dtype),
        valid_idx=np.array([0, 0, 1, 0], dtype),
        test_mask=np.array([0, 0, 0, 1], dtype),
    )
    graph = load_graph(convert_npz(path, tmp_path / "out", progress=False))
    assert graph.splits["train"].tolist() == [0, 1]
    assert graph.splits["val"].tolist() == [2] and graph.splits["test"].tolist() == [3]
    root = _ogb_folder(tmp_path / "ogbn_toy", train="1\n1\n0\n0\n", test="0\n0\n0\n1\n")
    graph = load_graph(convert_ogb_node_folder(root, tmp_path / "ogb_out", progress=False))
    assert graph.splits["train"].tolist() == [0, 1] and graph.splits["test"].tolist() == [3]


def test_a_mask_key_holding_other_values_is_refused(tmp_path):
    path = _npz(tmp_path / "g.npz", train_idx=None, train_mask=np.array([0, 2, 1, 0]))
    with pytest.raises(GraphFormatError, match="train_mask must be a boolean or 0/1"):
        convert_npz(path, tmp_path / "out", progress=False)


def test_decimal_edge_ids_are_refused_not_truncated(tmp_path):
    path = _npz(tmp_path / "g.npz", edge_index=np.array([[0.0, 3.7], [1.0, 2.0]]))
    with pytest.raises(GraphFormatError, match=r"g.npz:edge_index: edge 1 has node id .*3.7"):
        convert_npz(path, tmp_path / "out", progress=False)
    path = _npz(tmp_path / "whole.npz", edge_index=np.array([[0.0, 3.0], [1.0, 2.0]]))
    assert load_graph(convert_npz(path, tmp_path / "whole", progress=False)).num_edges == 2


def test_zero_width_features_are_refused(tmp_path, tiny_arrays):
    path = _npz(tmp_path / "g.npz", feat=np.ones((4, 0), np.float32))
    with pytest.raises(GraphFormatError, match="g.npz:feat: has zero columns"):
        convert_npz(path, tmp_path / "out", progress=False)
    indptr, indices, feat, label, splits = tiny_arrays()
    folder = save_graph(tmp_path / "g", indptr, indices, feat, label, splits)
    np.save(folder / "feat.npy", np.ones((4, 0), np.float32))
    with pytest.raises(GraphFormatError, match="feat.npy: has zero feature columns"):
        load_graph(folder)


def test_duplicate_split_ids_are_refused_naming_split_and_id(tmp_path, tiny_arrays):
    path = _npz(tmp_path / "g.npz", val_idx=np.array([2, 3, 2]))
    with pytest.raises(GraphFormatError, match="val_idx: the val split lists node 2 more than"):
        convert_npz(path, tmp_path / "out", progress=False)
    root = _ogb_folder(tmp_path / "ogbn_toy", test="1\n3\n3\n")
    with pytest.raises(GraphFormatError, match="test.csv.gz: the test split lists node 3"):
        convert_ogb_node_folder(root, tmp_path / "out", progress=False)
    folder = save_graph(tmp_path / "g", *tiny_arrays())
    np.save(folder / "train_idx.npy", np.array([1, 0, 1], np.int64))
    with pytest.raises(GraphFormatError, match="train_idx.npy: lists node 1 more than once"):
        load_graph(folder)


def test_an_empty_train_split_is_refused_at_load(tmp_path, tiny_arrays):
    path = _npz(tmp_path / "g.npz", train_idx=np.zeros(0, np.int64))
    with pytest.raises(GraphFormatError, match="g.npz:train_idx: the train split is empty"):
        convert_npz(path, tmp_path / "out", progress=False)
    root = _ogb_folder(tmp_path / "ogbn_toy", train="")
    with pytest.raises(GraphFormatError, match="train.csv.gz: the train split is empty"):
        convert_ogb_node_folder(root, tmp_path / "out", progress=False)
    folder = save_graph(tmp_path / "g", *tiny_arrays())
    np.save(folder / "train_idx.npy", np.zeros(0, np.int64))
    for validate in ("full", "cheap", "none"):
        with pytest.raises(GraphFormatError, match="train_idx.npy: the train split is empty"):
            load_graph(folder, validate=validate)


# 4. meta.json of the wrong shape


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda m: [m], "must hold a JSON object"),
        (lambda m: {**m, "num_nodes": "4"}, "key 'num_nodes' must be an integer, got \"4\""),
        (lambda m: {**m, "num_edges": -6}, "key 'num_edges' must not be negative"),
        (lambda m: {k: v for k, v in m.items() if k != "feat_dim"}, "key 'feat_dim' missing"),
        (lambda m: {**m, "num_classes": True}, "key 'num_classes' must be an integer"),
        (lambda m: {**m, "feat_dtype": 16}, "key 'feat_dtype' must be a string"),
        (lambda m: {**m, "num_nodes": 10**12}, "key 'num_nodes' = 1000000000000 but indptr"),
        (lambda m: {**m, "num_classes": 10**9}, "key 'num_classes' = 1000000000 is more"),
        (lambda m: {**m, "name": ["x"]}, "key 'name' must be a string"),
    ],
)
def test_meta_json_of_the_wrong_shape_names_the_key(tmp_path, tiny_arrays, mutate, message):
    folder = save_graph(tmp_path / "g", *tiny_arrays())
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps(mutate(meta)))
    with pytest.raises(GraphFormatError, match=message) as info:
        load_graph(folder)
    assert "meta.json" in str(info.value)


def test_npy_header_declaring_more_than_the_file_holds(tmp_path, tiny_arrays):
    folder = save_graph(tmp_path / "g", *tiny_arrays())
    with open(folder / "label.npy", "wb") as handle:
        np.lib.format.write_array_header_1_0(
            handle, {"descr": "<i8", "fortran_order": False, "shape": (10**11,)}
        )
        handle.write(np.zeros(4, np.int64).tobytes())
    with pytest.raises(GraphFormatError, match=r"label.npy: truncated: its header declares"):
        load_graph(folder)


# 5. full disk and read-only output


def _run_main(argv, capsys):
    from zerocopy_gcn.graph.convert import main

    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and lines[0] == err.strip().splitlines()[-1], err
    return lines[0]


def test_full_disk_while_writing_features_is_one_line_and_leaves_nothing(
    tmp_path, monkeypatch, capsys
):
    root = _ogb_folder(tmp_path / "ogbn_toy")

    def full(self, block):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(NpyWriter, "write", full)
    err = _run_main(["ogb", root, tmp_path / "out"], capsys)
    assert "out: cannot write the graph folder: No space left on device" in err
    assert not (tmp_path / "out").exists() and _left_behind(tmp_path) == []


def test_full_disk_when_reserving_edge_storage(tmp_path, monkeypatch, capsys):
    import zerocopy_gcn.graph.build as build

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(build.os, "posix_fallocate", full)
    err = _run_main(["npz", _npz(tmp_path / "g.npz"), tmp_path / "out"], capsys)
    assert "No space left on device" in err and "out" in err
    assert not (tmp_path / "out").exists() and _left_behind(tmp_path) == []


def test_read_only_file_system_is_one_line(tmp_path, monkeypatch, capsys):
    import pathlib

    real_mkdir = pathlib.Path.mkdir

    def read_only(self, *args, **kwargs):
        if ".partial-" in self.name:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", read_only)
    err = _run_main(["npz", _npz(tmp_path / "g.npz"), tmp_path / "out"], capsys)
    assert "out: cannot write the graph folder: Read-only file system" in err


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders"
)
def test_read_only_output_folder_is_one_line(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = _cli("npz", _npz(tmp_path / "g.npz"), locked / "out")
    finally:
        locked.chmod(0o755)
    _assert_user_error(result, "locked/out", "Permission denied")
    assert list(locked.iterdir()) == []


# 6. memory: no small input may make conversion or loading allocate by what it claims

_MEMORY_PROBE = textwrap.dedent("""
    import json, os, resource, sys
    from pathlib import Path

    from zerocopy_gcn.graph import GraphFormatError, convert_npz, convert_ogb_node_folder
    from zerocopy_gcn.graph import load_graph

    def rss_kib(field):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        return 0

    results = {}
    for case in json.loads(sys.argv[1]):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            try:  # the peak so far is the parent's; count from now
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                pass
            base = rss_kib("VmRSS")
            try:
                if case["kind"] == "npz":
                    convert_npz(case["input"], case["out"], progress=False)
                elif case["kind"] == "ogb":
                    convert_ogb_node_folder(case["input"], case["out"], progress=False)
                else:
                    load_graph(case["input"])
                outcome = "accepted"
            except GraphFormatError as error:
                outcome = str(error)
            except BaseException as error:  # reported, never carried on into the parent's loop
                outcome = f"not a user error: {type(error).__name__}: {error}"
            peak = max(rss_kib("VmHWM"), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
            os.write(write, json.dumps({"outcome": outcome, "base_kib": base,
                                        "peak_kib": peak}).encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            reply = pipe.read()
        _, status, usage = os.wait4(pid, 0)
        record = json.loads(reply) if reply else {"outcome": f"child died ({status})"}
        record["child_maxrss_kib"] = usage.ru_maxrss
        results[case["name"]] = record
    print(json.dumps(results))
""")


def _deflated_zeros_member(archive, key, dtype, shape):
    """A member of zeros written block by block: a small file that expands hugely."""
    with archive.open(f"{key}.npy", "w", force_zip64=True) as handle:
        np.lib.format.write_array_header_1_0(
            handle,
            {
                "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                "fortran_order": False,
                "shape": shape,
            },
        )
        remaining = int(np.prod(shape)) * np.dtype(dtype).itemsize
        block = bytes(1 << 24)
        while remaining:
            handle.write(block[: min(remaining, len(block))])
            remaining -= min(remaining, len(block))


def _hostile_inputs(tmp_path, tiny_arrays):
    cases = []
    folder = save_graph(tmp_path / "claims_1e12_nodes", *tiny_arrays())
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "num_nodes": 10**12}))
    cases.append({"name": "meta.json num_nodes=1e12", "kind": "load", "input": folder})

    folder = save_graph(tmp_path / "label_header_1e11", *tiny_arrays())
    with open(folder / "label.npy", "wb") as handle:
        np.lib.format.write_array_header_1_0(
            handle, {"descr": "<i8", "fortran_order": False, "shape": (10**11,)}
        )
    cases.append({"name": "label.npy header shape 1e11", "kind": "load", "input": folder})

    root = _ogb_folder(
        tmp_path / "ogbn_huge_id", edges="0,1\n1,1000000000000000\n", train="0\n1000000000000000\n"
    )
    cases.append({"name": "CSV edge id 10**15", "kind": "ogb", "input": root})

    # Complete, consistent files whose zero-filled members deflate ~1000x.  They used to be
    # read whole and then to size per-node arrays by the rows they expand to.
    for name, rows, feat_type in (
        ("many_nodes", 1 << 24, np.float16),
        ("bomb", 1 << 26, np.float32),
    ):
        path = tmp_path / f"{name}.npz"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            _deflated_zeros_member(archive, "feat", feat_type, (rows, 1))
            _deflated_zeros_member(archive, "label", np.int8, (rows,))
            for key, values in (
                ("train_idx", [0]),
                ("val_idx", [0]),
                ("test_idx", [0]),
                ("edge_index", [[0], [0]]),
            ):
                with archive.open(f"{key}.npy", "w") as handle:
                    np.save(handle, np.array(values))
        cases.append({"name": f"npz of {rows:,} zero rows ({name})", "kind": "npz", "input": path})

    root = _ogb_folder(
        tmp_path / "ogbn_gz_rows", feat="0\n" * (10 * 2**20), labels="0\n" * (10 * 2**20)
    )
    (root / "raw" / "num-node-list.csv.gz").unlink()  # the rows alone say how many nodes
    cases.append({"name": "node-feat.csv.gz 10M rows from 20 kB", "kind": "ogb", "input": root})

    root = _ogb_folder(tmp_path / "ogbn_gz_edges", edges="0,1\n" * (17 * 2**20))
    cases.append({"name": "edge.csv.gz 17M edges from 70 kB", "kind": "ogb", "input": root})
    for number, case in enumerate(cases):
        size = (
            sum(p.stat().st_size for p in case["input"].rglob("*") if p.is_file())
            if case["input"].is_dir()
            else case["input"].stat().st_size
        )
        assert size < 10 * 2**20, (case["name"], size)
        case["input"], case["out"] = str(case["input"]), str(tmp_path / f"out{number}")
    return cases


def test_small_hostile_inputs_stay_far_below_a_gigabyte(tmp_path, tiny_arrays):
    cases = _hostile_inputs(tmp_path, tiny_arrays)
    result = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, json.dumps(cases)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    for name, record in figures.items():
        growth_mib = (record["peak_kib"] - record["base_kib"]) / 1024
        print(f"{name}: +{growth_mib:.0f} MiB peak RSS -> {record['outcome'][:140]}")
        assert record["outcome"] != "accepted", name
        assert not record["outcome"].startswith(("child died", "not a user error")), record
        assert growth_mib < 1024, (name, record)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("out")]
