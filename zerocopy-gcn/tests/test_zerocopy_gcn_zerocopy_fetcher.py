"""The zero-copy fetcher's logic on the CPU: CuPy 14's runtime names, registration lifetimes,
read-only pinning, strided ids and the deferred bounds check (fake runtime, emulated kernels)."""

import gc
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from cuda_doubles import FAKE_ALIAS_OFFSET, EmulatedLauncher, FakeRuntime, cupy14_runtime_names
from kernel_emulation import build_emulator, compiler

from trilab.errors import UserError
from zerocopy_gcn.fetch import zerocopy
from zerocopy_gcn.fetch.zerocopy import (
    REGISTRY,
    HostRegistration,
    RegistrationError,
    ZeroCopyFetcher,
)

SOURCES = Path(zerocopy.__file__).resolve().parents[1]
needs_compiler = pytest.mark.skipif(compiler() is None, reason="no C++ compiler for the emulator")


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    if compiler() is None:
        pytest.skip("no C++ compiler for the emulator")
    return build_emulator(tmp_path_factory.mktemp("emu"))


@pytest.fixture(autouse=True)
def no_registration_left():
    yield
    gc.collect()
    assert REGISTRY.ranges == {}, "a test left a host range registered"


def runtime_names_used() -> set[str]:
    """Every ``runtime.<name>`` the package calls, and the attribute names it looks up by string."""
    used = set()
    for path in SOURCES.rglob("*.py"):
        text = path.read_text()
        used |= set(re.findall(r"runtime\.(\w+)", text))
        used |= set(re.findall(r"\"(cudaDevAttr\w+)\"", text))
    return used


def test_every_runtime_name_the_code_uses_exists_in_cupy14():
    names = cupy14_runtime_names()
    assert "hostRegister" in names and "hostGetDevicePointer" not in names  # the list is real
    used = runtime_names_used()
    assert {"hostRegister", "pointerGetAttributes", "deviceGetAttribute"} <= used
    assert used - names == set()


def test_the_fake_runtime_offers_only_what_cupy14_has():
    offered = {name for name in dir(FakeRuntime()) if not name.startswith("_")}
    offered -= {"attributes", "registered", "calls"}  # the double's own records
    assert offered - cupy14_runtime_names() == set()
    assert runtime_names_used() <= offered | {"cudaDevAttrHostRegisterReadOnlySupported"}


def test_device_pointer_is_the_host_pointer_where_the_gpu_allows_it():
    table = torch.zeros(64, 8)
    with HostRegistration(table, runtime=FakeRuntime(can_use_host_pointer=True)) as registration:
        assert registration.device_ptr == table.data_ptr()
    runtime = FakeRuntime(can_use_host_pointer=False)
    with HostRegistration(table, runtime=runtime) as registration:
        assert registration.device_ptr == table.data_ptr() + FAKE_ALIAS_OFFSET
        assert "pointerGetAttributes" in runtime.calls


def test_no_device_alias_unregisters_and_says_why():
    class NoAlias(FakeRuntime):
        def pointerGetAttributes(self, ptr):  # noqa: N802
            attributes = super().pointerGetAttributes(ptr)
            attributes.devicePointer = 0
            return attributes

    runtime = NoAlias(can_use_host_pointer=False)
    with pytest.raises(RegistrationError, match="no device address"):
        HostRegistration(torch.zeros(8, 8), runtime=runtime)
    assert runtime.registered == {}


def test_read_only_maps_need_the_gpu_to_support_read_only_pinning(tmp_path):
    np.save(tmp_path / "t.npy", np.zeros((16, 4), np.float32))
    table = torch.from_numpy(np.load(tmp_path / "t.npy", mmap_mode="c"))
    runtime = FakeRuntime(read_only_supported=False)
    with pytest.raises(UserError, match="host_table=shm") as raised:
        HostRegistration(table, runtime=runtime, read_only=True)
    assert "\n" not in str(raised.value)
    assert "hostRegister" not in runtime.calls and REGISTRY.ranges == {}
    with HostRegistration(table, runtime=FakeRuntime(), read_only=True) as registration:
        assert registration.flags & zerocopy.CUDA_HOST_REGISTER_READ_ONLY


def test_a_gpu_without_read_only_pinning_gets_a_pinned_copy_of_the_table(
    small_graph, monkeypatch, caplog
):
    """build_fetcher(fetch=zerocopy) over a folder's read-only memory map, on a GPU that cannot
    pin read-only memory: the table is copied once into writable memory and that copy is
    pinned, with a warning naming the copy's size, instead of the run stopping."""
    from omegaconf import OmegaConf

    import zerocopy_gcn.fetch as fetch

    calls = []

    def make(mode, table, device, read_only=False, **options):
        calls.append((mode, table, read_only, options))
        if read_only:
            raise zerocopy.ReadOnlyRegistrationUnsupported(
                "GPU 0 cannot pin read-only memory maps "
                "(cudaDevAttrHostRegisterReadOnlySupported = 0): use host_table=shm, ..."
            )
        return "fetcher"

    monkeypatch.setattr(fetch, "make_fetcher", make)
    config = OmegaConf.create({"mode": "zerocopy", "check_bounds": True, "kernel": "aligned"})
    assert not small_graph.feat.flags.writeable  # the folder's table is a read-only map
    with caplog.at_level("WARNING", logger="zerocopy_gcn.fetch"):
        assert fetch.build_fetcher(config, small_graph, torch.device("cpu")) == "fetcher"
    (_, mapped, first_read_only, options), (_, copy, second_read_only, _) = calls
    assert first_read_only and not second_read_only
    assert options == {"check_bounds": True, "kernel": "aligned"}
    assert torch.equal(copy, mapped) and copy.data_ptr() != mapped.data_ptr()
    assert "cannot pin read-only memory maps" in caplog.text and "GiB" in caplog.text


def test_unregistering_waits_for_the_device_first_and_close_is_idempotent():
    runtime = FakeRuntime()
    registration = HostRegistration(torch.zeros(32, 4), runtime=runtime)
    registration.close()
    registration.close()
    assert runtime.calls[-2:] == ["deviceSynchronize", "hostUnregister"]
    assert runtime.calls.count("hostUnregister") == 1 and not registration.registered


@needs_compiler
def test_a_failed_init_leaves_nothing_registered(emulator):
    table = torch.randn(50, 16)
    runtime = FakeRuntime()
    launcher = EmulatedLauncher(emulator, runtime, fail_on="gather_aligned_w16")
    with pytest.raises(RuntimeError, match="compiling gather_aligned_w16 failed"):
        ZeroCopyFetcher(table, "cpu", runtime=runtime, launcher=launcher)
    assert runtime.registered == {} and REGISTRY.ranges == {}
    assert runtime.calls[-2:] == ["deviceSynchronize", "hostUnregister"]
    # the range is free again: the same table registers at once
    fetcher = ZeroCopyFetcher(table, "cpu", launcher=EmulatedLauncher(emulator, runtime))
    fetcher.close()
    fetcher.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        fetcher.fetch(torch.tensor([0]))


@needs_compiler
@pytest.mark.parametrize("sort", [False, True])
def test_strided_ids_gather_the_rows_they_name(emulator, sort):
    table = torch.randn(400, 25)
    ids = torch.randint(0, 400, (301,), generator=torch.Generator().manual_seed(0))
    strided = ids[::2]
    assert not strided.is_contiguous()
    launcher = EmulatedLauncher(emulator)
    with ZeroCopyFetcher(table, "cpu", launcher=launcher, sort_indices=sort) as fetcher:
        assert torch.equal(fetcher.fetch(strided), table.index_select(0, strided))
        assert torch.equal(fetcher.fetch(ids[1::3]), table.index_select(0, ids[1::3]))
        assert launcher.launches == 2 and fetcher.rows_fetched == 151 + 100


@needs_compiler
def test_bounds_check_now_or_deferred(emulator):
    table = torch.randn(30, 8)
    with ZeroCopyFetcher(table, "cpu", launcher=EmulatedLauncher(emulator)) as fetcher:
        with pytest.raises(IndexError, match="node id 30 is out of range"):
            fetcher.fetch(torch.tensor([1, 30, 2]))
        out, check = fetcher.fetch_deferred(torch.tensor([4, -1]))  # no error until checked
        assert out.shape == (2, 8) and torch.equal(out[0], table[4])
        with pytest.raises(IndexError, match="node id -1"):
            check()
        out, check = fetcher.fetch_deferred(torch.tensor([3, 2]))
        check()  # in range: nothing raised
        assert torch.equal(out, table[[3, 2]])
    with ZeroCopyFetcher(
        table, "cpu", launcher=EmulatedLauncher(emulator), check_bounds=False
    ) as fetcher:
        out, check = fetcher.fetch_deferred(torch.tensor([0, 99]))
        assert check is None and torch.equal(out[0], table[0])  # row 1 is left uninitialised


# --- the same on a GPU (make gpu-check runs these) ---------------------------------------------

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.gpu
@needs_gpu
def test_the_installed_cupy_has_every_runtime_name_the_code_uses():
    cupy = pytest.importorskip("cupy")
    assert runtime_names_used() - set(dir(cupy.cuda.runtime)) == set()
    assert hasattr(cupy.cuda.Stream, "from_external")


@pytest.mark.gpu
@needs_gpu
def test_strided_ids_and_the_producer_thread_on_cuda():
    pytest.importorskip("cupy")
    import warnings

    from zerocopy_gcn.prefetch import Prefetcher, PreparedBatch
    from zerocopy_gcn.sampling import MiniBatch

    table = torch.randn(5000, 100)
    ids = torch.randint(0, 5000, (4001,), device="cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # no ExternalStream and the like
        fetcher = ZeroCopyFetcher(table, "cuda", max_threads=4096)
        assert torch.equal(fetcher.fetch(ids[::2]).cpu(), table.index_select(0, ids[::2].cpu()))
    batches = [ids[i : i + 500] for i in range(0, 4000, 500)] + [torch.tensor([0, 5000])]

    def make(step, seeds):
        features, check = fetcher.fetch_deferred(seeds)  # as in the producer: nothing waits
        return PreparedBatch(MiniBatch(seeds, []), features, 0.0, 0.0, bounds_check=check)

    got = []
    with pytest.raises(IndexError, match="node id 5000"):
        for prepared in Prefetcher(make, batches, torch.device("cuda"), enabled=True):
            prepared.wait()
            got.append(prepared.features.cpu())
    assert len(got) == 8
    for features, seeds in zip(got, batches, strict=False):
        assert torch.equal(features, table.index_select(0, seeds.cpu()))
    fetcher.close()


def test_kernels_launch_on_torchs_current_stream_through_stream_from_external(monkeypatch):
    """CuPy 14 deprecates ExternalStream: the launcher wraps torch's current stream with
    Stream.from_external, which takes an object offering the CUDA stream protocol."""
    seen = {}

    class Context:
        def __init__(self, name):
            self.name = name

        def __enter__(self):
            seen.setdefault("entered", []).append(self.name)

        def __exit__(self, *exc_info):
            return False

    class CupyStream:
        @classmethod
        def from_external(cls, obj):
            seen["protocol"] = obj.__cuda_stream__()
            return Context("stream")

    class Cuda:
        Stream = CupyStream
        runtime = FakeRuntime()

        @staticmethod
        def Device(index):  # noqa: N802 - CuPy's name
            return Context(f"device {index}")

    class FakeCupy:
        cuda = Cuda

    class TorchStream:
        cuda_stream = 0xABC

    monkeypatch.setattr(zerocopy, "require_cupy", lambda: FakeCupy)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: TorchStream())
    launcher = zerocopy.CupyLauncher(torch.device("cuda", 0))
    launcher.launch(
        lambda grid, block, args: seen.update(launch=(grid, block, args)), 3, (32, 4), ()
    )
    assert seen["protocol"] == (0, 0xABC)
    assert seen["entered"] == ["device 0", "stream"]
    assert seen["launch"] == ((3,), (32, 4), ())
    assert not hasattr(FakeCupy.cuda, "ExternalStream")
