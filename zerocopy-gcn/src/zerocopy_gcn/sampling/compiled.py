"""Compiled CPU neighbour sampler: sampling and block construction fused, parallel over nodes.

Same batches in the same layout as :class:`zerocopy_gcn.sampling.reference.NeighborSampler`
(the vectorised reference), built per hop by a few numba kernels instead of a chain of tensor ops:

1. ``_row_extents`` (calling thread): start and degree of each frontier row; the output
   offsets follow from them;
2. ``_sample_and_gather`` (every thread, chunks of rows): per row ``min(degree, fanout)``
   distinct in-edges, uniformly, without replacement (Floyd's algorithm for small fanouts,
   reservoir sampling for large ones), written straight into the block's ``edge_index[1]``
   and edge ids, then the neighbours read from ``indices``;
3. ``_number_and_relabel`` (calling thread, chunk by chunk in order as step 2 finishes them):
   frontier dedup and relabelling (what ``unique_keep_prefix`` / DGL's ``to_block`` do) with
   one node -> local-id map of ``num_nodes`` entries per batch, which grows over the hops
   since a hop's source nodes are the next hop's destinations; new nodes get ids in order of
   first appearance, after the destinations, exactly as in the reference.  With many
   threads a three-pass parallel dedup replaces it.

Parallelism is a plain thread pool over chunks, each chunk one nogil kernel call, taken from
a shared counter: nothing spins while it waits, each hop has one point where threads wait for
each other, and a descheduled thread holds up only the chunk it has, which keeps the rate
steady when another process shares the cores; the sampler is safe to use from several Python
threads.  Random numbers are a counter-based stream per (batch, hop, frontier position), so a
batch depends on (seed, epoch, step, rank) only: not on the thread count, the chunking or which
thread (training or prefetch) asked for it.  The batch's key is
:func:`zerocopy_gcn.sampling.keys.batch_key`, the rule every sampler uses.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from zerocopy_gcn.graph.csr import CSRGraph, GraphFormatError
from zerocopy_gcn.sampling.base import Block, MiniBatch
from zerocopy_gcn.sampling.keys import GOLDEN64, batch_key, hop_key
from zerocopy_gcn.sampling.threads import default_num_threads

_GOLDEN = np.uint64(GOLDEN64)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_MASK32 = np.uint64(0xFFFFFFFF)
_TWO32 = np.uint64(1 << 32)
_S27, _S30, _S31, _S32 = np.uint64(27), np.uint64(30), np.uint64(31), np.uint64(32)
# Floyd's algorithm checks each draw against the ones taken (fanout^2 / 2 compares); reservoir
# sampling draws once per edge of the row.  Floyd while that is the cheaper of the two.
_FLOYD_MAX_FANOUT = 64
_FLOYD_COMPARES_PER_DRAW = 32
# Work below which a phase runs on the calling thread (a hand-off costs ~10-50 us).
_MIN_NODES_PER_CHUNK = 2048
_MIN_EDGES_PER_CHUNK = 16384
_CHUNKS_PER_THREAD = 4  # a descheduled thread then holds up at most a quarter of its share
# The parallel dedup makes every thread scan all of a hop's edges (each numbers the nodes of
# its own hash class) and takes three passes to the serial dedup's one: on 2 threads it cost
# 4.5x the serial dedup's CPU time (measured), so below this many threads the calling thread
# dedups alone, overlapped with the other threads' sampling.
_PARALLEL_DEDUP_MIN_THREADS = 4


# How far ahead the random-access loops prefetch: each of them waits on memory (a row of a
# 200 MB indices array, an entry of an 8 MB map), and the out-of-order window alone keeps few
# such reads in flight.  Measured on the 2-core EPYC: random gather 9.4 -> 3.2 ns per read at
# distance 256, map lookups 11.7 -> 8 ns at 16-48.
_GATHER_PREFETCH = 256
_MAP_PREFETCH = 32

# ---------------------------------------------------------------------------------- kernels


@intrinsic
def _prefetch(typingctx, array, index):
    """Ask the CPU to start loading ``array[index]``'s cache line (llvm.prefetch: no fault,
    nothing waits on it)."""

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        view = context.make_array(array_type)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(
            context, builder, array_type, view, [args[1]], wraparound=False, boundscheck=False
        )
        i32 = ir.IntType(32)
        function = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [pointer.type, i32, i32, i32]),
            "llvm.prefetch.p0",
        )
        # read access, high temporal locality, data cache
        builder.call(
            function, [pointer, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)]
        )
        return context.get_dummy_value()

    return types.void(array, index), codegen


@njit(inline="always")
def _mix64(z):
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@njit(inline="always")
def _below(state, bound):
    """(next state, uniform integer in [0, bound)) for 0 < bound < 2^32: splitmix64 output,
    Lemire's multiply-shift with rejection, so no value is favoured."""
    ubound = np.uint64(bound)
    while True:
        state = state + _GOLDEN
        product = (_mix64(state) >> _S32) * ubound
        low = product & _MASK32
        if low >= ubound or low >= (_TWO32 - ubound) % ubound:
            return state, np.int64(product >> _S32)


@njit(nogil=True, cache=True)
def _row_extents(indptr, num_indices, frontier, lo, hi, starts, degrees):
    """Start and degree of rows ``frontier[lo:hi]``; False when ``indptr`` is out of shape."""
    for j in range(lo, hi):
        if j + _MAP_PREFETCH < hi:
            _prefetch(indptr, frontier[j + _MAP_PREFETCH])
        node = frontier[j]
        start = indptr[node]
        end = indptr[node + 1]
        if start < 0 or end < start or end > num_indices or end - start >= 1 << 32:
            return False
        starts[j] = start
        degrees[j] = end - start
    return True


@njit(nogil=True, cache=True)
def _sample_rows(starts, degrees, fanout, key, lo, hi, first_out, edge_ids, dst_local):
    """Choose the in-edges of frontier positions ``lo:hi``, written from ``first_out`` on.

    A row with ``degree <= fanout`` (or ``fanout < 0``) is taken whole; otherwise ``fanout``
    distinct positions are drawn uniformly from the row's own stream.  Only ``starts`` and
    ``degrees`` (sequential) are read here: the random reads of ``indices`` are left to
    :func:`_gather_neighbours`, whose short loop keeps many of them in flight at once.
    """
    out = first_out
    for j in range(lo, hi):
        start = starts[j]
        degree = degrees[j]
        if fanout < 0 or degree <= fanout:
            for i in range(degree):
                edge_ids[out + i] = start + i
            taken = degree
        else:
            state = _mix64(key ^ (np.uint64(j) * _GOLDEN))
            if fanout <= _FLOYD_MAX_FANOUT or fanout * fanout <= _FLOYD_COMPARES_PER_DRAW * (
                degree - fanout
            ):
                # Floyd: for t = d-k .. d-1 draw r in [0, t]; take r, or t if r was taken
                for n in range(fanout):
                    last = degree - fanout + n
                    state, pick = _below(state, last + 1)
                    for q in range(out, out + n):
                        if edge_ids[q] == start + pick:
                            pick = last
                            break
                    edge_ids[out + n] = start + pick
            else:
                # reservoir (algorithm R): row position i replaces a random slot w.p. k / (i+1)
                for i in range(fanout):
                    edge_ids[out + i] = start + i
                for i in range(fanout, degree):
                    state, slot = _below(state, i + 1)
                    if slot < fanout:
                        edge_ids[out + slot] = start + i
            taken = fanout
        for i in range(out, out + taken):
            dst_local[i] = j
        out += taken


@njit(nogil=True, cache=True)
def _gather_neighbours(indices, num_nodes, edge_ids, lo, hi, neighbours):
    """``neighbours[lo:hi] = indices[edge_ids[lo:hi]]``; False on an id outside
    ``[0, num_nodes)`` (a corrupt ``indices`` would otherwise be read past the map's end)."""
    valid = True
    for i in range(lo, hi):
        if i + _GATHER_PREFETCH < hi:
            _prefetch(indices, edge_ids[i + _GATHER_PREFETCH])
        neighbour = indices[edge_ids[i]]
        valid &= (neighbour >= 0) & (neighbour < num_nodes)
        neighbours[i] = neighbour
    return valid


@njit(nogil=True, cache=True)
def _sample_and_gather(
    indices,
    num_nodes,
    starts,
    degrees,
    fanout,
    key,
    lo,
    hi,
    first_out,
    edge_ids,
    dst_local,
    neighbours,
):
    """One chunk of a hop, all of a thread's work in one call: rows ``lo:hi`` sampled, then
    their edges' neighbours gathered (two loops, so the gather's stays short)."""
    _sample_rows(starts, degrees, fanout, key, lo, hi, first_out[lo], edge_ids, dst_local)
    return _gather_neighbours(
        indices, num_nodes, edge_ids, first_out[lo], first_out[hi], neighbours
    )


@njit(nogil=True, cache=True)
def _number_seeds(seeds, local_of):
    """Give the seeds local ids 0..n-1; returns how many were numbered before a repeat."""
    for j in range(seeds.shape[0]):
        if local_of[seeds[j]] != 0:
            return j
        local_of[seeds[j]] = j + 1
    return seeds.shape[0]


@njit(nogil=True, cache=True)
def _number_and_relabel(neighbours, lo, hi, num_known, local_of, src_nodes, src_local):
    """Serial dedup of edges ``lo:hi`` (called for consecutive ranges in order): unseen
    neighbours get the next local ids in order of first appearance, appended to ``src_nodes``
    after the ``num_known`` numbered so far, and every edge its source's local id.  Returns
    the number of source nodes numbered so far."""
    count = num_known
    for i in range(lo, hi):
        if i + _MAP_PREFETCH < hi:
            _prefetch(local_of, neighbours[i + _MAP_PREFETCH])
        node = neighbours[i]
        local = local_of[node]
        if local == 0:
            src_nodes[count] = node
            count += 1
            local = count
            local_of[node] = count
        src_local[i] = local - 1
    return count


@njit(inline="always")
def _owner(node, num_owners):
    return np.int64(((np.uint64(node) * _GOLDEN) >> _S32) % np.uint64(num_owners))


@njit(nogil=True, cache=True)
def _claim_first_appearances(neighbours, owner, num_owners, chunk_len, local_of, new_per_chunk):
    """Parallel dedup, step 1 of 3, for the nodes this owner (a hash class of ids) holds.

    Scans all edges in order; a node not yet numbered is marked ``-(position + 1)`` at its
    first appearance, and counted in that position's chunk.  Owners touch disjoint map
    entries, so no two threads write the same one.
    """
    for i in range(neighbours.shape[0]):
        node = neighbours[i]
        if _owner(node, num_owners) == owner and local_of[node] == 0:
            local_of[node] = -(i + 1)
            new_per_chunk[i // chunk_len] += 1


@njit(nogil=True, cache=True)
def _number_first_appearances(neighbours, lo, hi, next_local, local_of, src_nodes):
    """Step 2: the marked first appearances in ``lo:hi`` get consecutive local ids from
    ``next_local`` (this chunk's share of the running count)."""
    for i in range(lo, hi):
        node = neighbours[i]
        # an entry another chunk renumbers meanwhile is positive: never this position's mark
        if local_of[node] == -(i + 1):
            src_nodes[next_local] = node
            next_local += 1
            local_of[node] = next_local


@njit(nogil=True, cache=True)
def _relabel(neighbours, lo, hi, local_of, src_local):
    """Step 3, after every chunk of step 2: each edge's source as a local id."""
    for i in range(lo, hi):
        src_local[i] = local_of[neighbours[i]] - 1


@njit(nogil=True, cache=True)
def _clear(nodes, lo, hi, local_of):
    for i in range(lo, hi):
        if i + _MAP_PREFETCH < hi:
            _prefetch(local_of, nodes[i + _MAP_PREFETCH])
        local_of[nodes[i]] = 0


# ------------------------------------------------------------------------------------ driver


def _chunks(total: int, min_per_chunk: int, num_threads: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` ranges of one length (the last shorter) covering ``0..total``: a few per
    thread, none shorter than ``min_per_chunk`` unless there is only one."""
    count = max(1, min(num_threads * _CHUNKS_PER_THREAD, total // min_per_chunk))
    length = max(1, -(-total // count))
    return [(lo, min(lo + length, total)) for lo in range(0, total, length)] or [(0, 0)]


class CompiledNeighborSampler:
    """Drop-in for :class:`~zerocopy_gcn.sampling.reference.NeighborSampler` on the CPU (same
    ``sample(seeds, epoch, step)`` -> :class:`MiniBatch`, blocks in the same layout; a
    :class:`~zerocopy_gcn.sampling.base.BlockSampler`).

    ``num_threads``: threads per batch (0 or None: the CPUs of this process's affinity mask);
    the calling thread is one of them.  Blocks do not share buffers with the sampler.
    ``parallel_dedup`` (default: from ``num_threads`` >= 4), ``min_chunk_nodes`` and
    ``min_chunk_edges`` (the least work worth handing to another thread) tune the split; the
    batches do not depend on them (tests make small graphs take the parallel paths).
    """

    def __init__(
        self,
        graph: CSRGraph | None,
        fanouts: list[int],
        seed: int = 0,
        num_threads: int | None = None,
        indptr: np.ndarray | torch.Tensor | None = None,
        indices: np.ndarray | torch.Tensor | None = None,
        *,
        parallel_dedup: bool | None = None,
        min_chunk_nodes: int = _MIN_NODES_PER_CHUNK,
        min_chunk_edges: int = _MIN_EDGES_PER_CHUNK,
        rank: int = 0,
    ) -> None:
        self.fanouts = [int(f) for f in fanouts]
        self.seed = int(seed)
        self.rank = int(rank)
        self.device = torch.device("cpu")
        self.num_threads = int(num_threads) if num_threads else default_num_threads()
        if self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1 (0 = automatic), got {num_threads}")
        if indptr is None or indices is None:
            if graph is None:
                raise ValueError("CompiledNeighborSampler needs a graph or indptr + indices")
            indptr, indices = graph.indptr, graph.indices
        self.indptr = _read_only(indptr, (np.int64,))
        self.indices = _read_only(indices, (np.int32, np.int64))
        self.num_nodes = int(self.indptr.shape[0] - 1)
        self.parallel_dedup = (
            self.num_threads >= _PARALLEL_DEDUP_MIN_THREADS
            if parallel_dedup is None
            else bool(parallel_dedup)
        )
        self.min_chunk_nodes = max(1, int(min_chunk_nodes))
        self.min_chunk_edges = max(1, int(min_chunk_edges))
        self.labels = torch.from_numpy(np.asarray(graph.label)) if graph is not None else None
        # int32 map entries halve its cache footprint; ids and marks fit below 2^31 - 1
        self._map_dtype = np.int32 if self.num_nodes < 2**31 - 1 else np.int64
        self._free_maps: list[np.ndarray] = []
        self._maps_lock = threading.Lock()
        self._pool = (
            ThreadPoolExecutor(self.num_threads - 1, thread_name_prefix="sampler")
            if self.num_threads > 1
            else None
        )
        if self._pool is not None:
            weakref.finalize(self, self._pool.shutdown, wait=False)

    # -- per-batch scratch: one node -> local id map, reused, all zeros between batches
    def _take_map(self) -> np.ndarray:
        with self._maps_lock:
            if self._free_maps:
                return self._free_maps.pop()
        # zeros come from fresh (lazily zeroed) pages: only the entries touched cost memory
        return np.zeros(self.num_nodes, dtype=self._map_dtype)

    def _give_back_map(self, local_of: np.ndarray) -> None:
        with self._maps_lock:
            self._free_maps.append(local_of)

    def _run(self, work: Callable[[int, int], object], chunks: list[tuple[int, int]]) -> list:
        """``work(lo, hi)`` for every chunk; helpers and the caller take chunks in turn."""
        results: list = [None] * len(chunks)
        if self._pool is None or len(chunks) == 1:
            for c, (lo, hi) in enumerate(chunks):
                results[c] = work(lo, hi)
            return results
        next_chunk = itertools.count()  # next() on it is atomic under the GIL

        def drain() -> None:
            while (c := next(next_chunk)) < len(chunks):
                results[c] = work(*chunks[c])

        helpers = [self._pool.submit(drain) for _ in range(min(self.num_threads, len(chunks)) - 1)]
        drain()
        for helper in helpers:
            helper.result()
        return results

    def sample(self, seeds: torch.Tensor, epoch: int = 0, step: int = 0) -> MiniBatch:
        seeds = torch.as_tensor(seeds).to("cpu", torch.long)
        seed_ids = np.ascontiguousarray(seeds.numpy())
        if seed_ids.size and (seed_ids.min() < 0 or seed_ids.max() >= self.num_nodes):
            raise IndexError(
                f"seed node ids must lie in [0, {self.num_nodes}), got "
                f"{int(seed_ids.min())}..{int(seed_ids.max())}"
            )
        local_of = self._take_map()
        # on an error the map, which may hold entries, is dropped rather than given back
        blocks, src_nodes = self._sample_blocks(
            seed_ids, batch_key(self.seed, epoch, step, self.rank), local_of
        )
        _clear(src_nodes, 0, src_nodes.shape[0], local_of)  # one fast pass: not worth a hand-off
        self._give_back_map(local_of)
        labels = self.labels[seeds] if self.labels is not None else None
        return MiniBatch(seeds, blocks[::-1], labels)

    def _sample_blocks(
        self, seed_ids: np.ndarray, key: int, local_of: np.ndarray
    ) -> tuple[list[Block], np.ndarray]:
        numbered = _number_seeds(seed_ids, local_of)
        if numbered != seed_ids.shape[0]:
            raise ValueError("seed nodes of a batch must be distinct")
        frontier = seed_ids
        blocks = []
        for hop, fanout in enumerate(self.fanouts):
            src_nodes, edge_index, edge_ids = self._hop(
                frontier, fanout, np.uint64(hop_key(key, hop)), local_of
            )
            blocks.append(
                Block(
                    torch.from_numpy(src_nodes),
                    int(frontier.shape[0]),
                    torch.from_numpy(edge_index),
                    torch.from_numpy(edge_ids),
                )
            )
            frontier = src_nodes
        return blocks, frontier

    def _hop(
        self, frontier: np.ndarray, fanout: int, key: np.uint64, local_of: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One hop: ``(src_nodes, edge_index [2, E], edge_ids)`` for destinations ``frontier``
        (which already hold local ids ``0..len-1`` in ``local_of``).

        Row extents on the calling thread (a short pass; the output offsets need all of it),
        then one parallel phase: chunks of rows sampled and gathered by every thread, deduped
        in order by the calling thread as they complete.  Every point where one thread waits
        for another costs a scheduler time slice when a core is shared, so a hop has one.
        """
        num_dst = frontier.shape[0]
        starts = np.empty(num_dst, dtype=np.int64)
        degrees = np.empty(num_dst, dtype=np.int64)
        if not _row_extents(
            self.indptr, self.indices.shape[0], frontier, 0, num_dst, starts, degrees
        ):
            raise GraphFormatError(
                "indptr is not a valid row-pointer array for indices "
                "(decreasing, negative, past the end, or a row >= 2^32)"
            )
        taken = degrees if fanout < 0 else np.minimum(degrees, fanout)
        first_out = np.zeros(num_dst + 1, dtype=np.int64)
        np.cumsum(taken, out=first_out[1:])
        num_edges = int(first_out[-1])
        edge_index = np.empty((2, num_edges), dtype=np.int64)  # row 0 source, row 1 destination
        edge_ids = np.empty(num_edges, dtype=np.int64)
        neighbours = np.empty(num_edges, dtype=np.int64)
        src_local, dst_local = edge_index[0], edge_index[1]
        node_chunks = _chunks(num_dst, self.min_chunk_nodes, self.num_threads)

        def sample_chunk(lo: int, hi: int) -> bool:
            return _sample_and_gather(
                self.indices,
                self.num_nodes,
                starts,
                degrees,
                fanout,
                key,
                lo,
                hi,
                first_out,
                edge_ids,
                dst_local,
                neighbours,
            )

        if not self.parallel_dedup or self._pool is None:
            src_nodes = np.empty(num_dst + num_edges, dtype=np.int64)
            src_nodes[:num_dst] = frontier
            count = num_dst

            def number(lo: int, hi: int) -> None:
                nonlocal count
                count = _number_and_relabel(
                    neighbours, first_out[lo], first_out[hi], count, local_of, src_nodes, src_local
                )

            self._run_in_order(sample_chunk, number, node_chunks)
            return src_nodes[:count], edge_index, edge_ids
        if not all(self._run(sample_chunk, node_chunks)):
            raise GraphFormatError(self._bad_indices)
        edge_chunks = _chunks(num_edges, self.min_chunk_edges, self.num_threads)
        chunk_len = edge_chunks[0][1] - edge_chunks[0][0]
        owners = min(self.num_threads, len(edge_chunks))
        new_per_chunk = np.zeros((owners, len(edge_chunks)), dtype=np.int64)
        self._run(
            lambda owner, _next_owner: _claim_first_appearances(
                neighbours, owner, owners, chunk_len, local_of, new_per_chunk[owner]
            ),
            [(owner, owner + 1) for owner in range(owners)],
        )
        first_local = num_dst + np.concatenate([[0], np.cumsum(new_per_chunk.sum(0))])
        src_nodes = np.empty(int(first_local[-1]), dtype=np.int64)
        src_nodes[:num_dst] = frontier
        starts_of = {lo: int(first_local[c]) for c, (lo, _) in enumerate(edge_chunks)}
        self._run(
            lambda lo, hi: _number_first_appearances(
                neighbours, lo, hi, starts_of[lo], local_of, src_nodes
            ),
            edge_chunks,
        )
        self._run(lambda lo, hi: _relabel(neighbours, lo, hi, local_of, src_local), edge_chunks)
        return src_nodes, edge_index, edge_ids

    def _run_in_order(
        self,
        work: Callable[[int, int], bool],
        then: Callable[[int, int], None],
        chunks: list[tuple[int, int]],
    ) -> None:
        """``work`` on every chunk, by every thread, and ``then`` on each chunk on the calling
        thread, in chunk order, as soon as its ``work`` is done (the caller works on a chunk
        itself whenever the next one is not ready), so the serial ``then`` overlaps the other
        threads' ``work``.  ``work`` returning False (a bad neighbour id) stops it before
        ``then`` sees that chunk."""
        done = [threading.Event() for _ in chunks]
        valid = [True] * len(chunks)
        next_chunk = itertools.count()  # next() on it is atomic under the GIL

        def work_next() -> bool:
            c = next(next_chunk)
            if c >= len(chunks):
                return False
            valid[c] = work(*chunks[c])
            done[c].set()
            return True

        def drain() -> None:
            while work_next():
                pass

        helpers = (
            [self._pool.submit(drain) for _ in range(min(self.num_threads, len(chunks)) - 1)]
            if self._pool is not None
            else []
        )
        try:
            for c, (lo, hi) in enumerate(chunks):
                while not done[c].is_set():
                    if not work_next():
                        done[c].wait()
                if not valid[c]:  # a bad id would index past the map's end
                    raise GraphFormatError(self._bad_indices)
                then(lo, hi)
        finally:
            for helper in helpers:
                helper.result()

    @property
    def _bad_indices(self) -> str:
        return f"indices holds a node id outside [0, {self.num_nodes})"

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def _read_only(array: np.ndarray | torch.Tensor, dtypes: tuple[type, ...]) -> np.ndarray:
    """A read-only, C-contiguous view (one compiled specialisation for memory maps, arrays and
    tensors alike); other integer dtypes are converted once."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    if array.dtype not in dtypes:
        array = array.astype(dtypes[-1])
    view = np.ascontiguousarray(array).view()
    view.flags.writeable = False
    return view
