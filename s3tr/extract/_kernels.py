"""numba kernels of the extraction: the fused per-parcel reduction over the run index.

Kept apart from the public modules so that the compiled functions are cached once
(``cache=True``) and the Python-level code stays readable. The scan-line index builder lives in
:mod:`s3tr.extract._scanline`.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

# Vector width (float64 lanes) of the run loop, runs from which the unrolled loop is used, and
# its number of independent accumulator sets. Measured on the benchmark tile (AVX-512 machine):
# 4 lanes beat 8 (less waste at run ends), 64 / 2 beat 32 / 4 and 128 / 4.
_LANES = 4
_LONG_RUN = 64
_UNROLL = 2


@intrinsic
def _run_sums(typingctx, arr, start, stop, shift):  # type: ignore[no-untyped-def]
    """``(n, sum(v - shift), sum((v - shift)**2))`` over the non-NaN ``arr[start:stop]``, float64.

    A hand-written LLVM vector loop. Most parcel runs are 5 to 20 pixels long, and LLVM's own
    vectoriser (numba ``fastmath``) runs its vector body only from 32 pixels on (VF 8 x
    interleave 4), leaving them to a scalar loop; a test on the length to pick one of two loops
    costs more than it saves (the branch is unpredictable). Here each step reads 4 pixels with
    a masked load — lanes past ``stop`` read as NaN, so they drop out like invalid pixels and
    nothing past the run is touched — so a 15-pixel run takes 4 vector steps. Runs of
    ``_LONG_RUN`` pixels and more first go through unmasked steps with independent accumulators.
    The NaN test is exact (``fcmp uno``); the arithmetic is IEEE float64 (the order of the
    additions differs from a sequential sum by rounding only).
    """
    if not (
        isinstance(arr, types.Array)
        and arr.ndim == 1
        and arr.layout == "C"  # the loop walks the data pointer with unit stride
        and arr.dtype in (types.float32, types.float64)
    ):
        return None
    sig = types.UniTuple(types.float64, 3)(arr, start, stop, shift)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        arrty = signature.args[0]
        ary = context.make_array(arrty)(context, builder, args[0])
        i0 = context.cast(builder, args[1], signature.args[1], types.int64)
        i1 = context.cast(builder, args[2], signature.args[2], types.int64)
        sh = context.cast(builder, args[3], signature.args[3], types.float64)
        i32, i64, f64 = ir.IntType(32), ir.IntType(64), ir.DoubleType()
        elt = ir.FloatType() if arrty.dtype == types.float32 else f64
        vt, vd, vi = ir.VectorType(elt, _LANES), ir.VectorType(f64, _LANES), ir.VectorType(i64, _LANES)
        zero = ir.Constant(vd, [0.0] * _LANES)
        zero_i = ir.Constant(vi, [0] * _LANES)

        def splat(val, vty):  # type: ignore[no-untyped-def]
            undef = ir.Constant(vty, ir.Undefined)
            v = builder.insert_element(undef, val, ir.Constant(i32, 0))
            return builder.shuffle_vector(v, undef, ir.Constant(ir.VectorType(i32, _LANES), [0] * _LANES))

        n = builder.sub(i1, i0)
        base = builder.gep(ary.data, [i0])
        n_vec = splat(n, vi)
        sh_vec = splat(sh, vd)
        fnty = ir.FunctionType(vt, [ir.PointerType(vt), i32, ir.VectorType(ir.IntType(1), _LANES), vt])
        suffix = f"v{_LANES}{'f32' if elt is not f64 else 'f64'}"
        masked_load = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.masked.load.{suffix}.p0")
        lanes = ir.Constant(vi, list(range(_LANES)))
        nan = ir.Constant(vt, [float("nan")] * _LANES)
        align = ir.Constant(i32, 4 if elt is not f64 else 8)

        def accumulate(x, s1, s2, cnt):  # type: ignore[no-untyped-def]
            xd = builder.fpext(x, vd) if elt is not f64 else x
            bad = builder.fcmp_unordered("uno", xd, xd)
            d = builder.select(bad, zero, builder.fsub(xd, sh_vec))
            return (
                builder.fadd(s1, d),
                builder.fadd(s2, builder.fmul(d, d)),
                builder.add(cnt, builder.zext(builder.not_(bad), vi)),  # integer lane counts
            )

        def ptr_at(i):  # type: ignore[no-untyped-def]
            return builder.bitcast(builder.gep(base, [i]), ir.PointerType(vt))

        # Long runs first go through a loop of plain (unmasked) loads with _UNROLL independent
        # accumulator sets, so that the float additions of successive steps do not wait for each
        # other; the rest of the run (and every short run) goes through the masked loop. The
        # test on the run length is predictable (long runs are rare), unlike a loop exit.
        entry = builder.basic_block
        big_loop = builder.append_basic_block("run.big_loop")
        big_body = builder.append_basic_block("run.big_body")
        big_done = builder.append_basic_block("run.big_done")
        loop = builder.append_basic_block("run.loop")
        body = builder.append_basic_block("run.body")
        done = builder.append_basic_block("run.done")
        block = ir.Constant(i64, _UNROLL * _LANES)
        builder.cbranch(builder.icmp_signed(">=", n, ir.Constant(i64, _LONG_RUN)), big_loop, loop)

        builder.position_at_end(big_loop)
        bi = builder.phi(i64)
        bi.add_incoming(ir.Constant(i64, 0), entry)
        sets = []
        for _ in range(_UNROLL):
            trio = [builder.phi(vd), builder.phi(vd), builder.phi(vi)]
            for phi, init in zip(trio, (zero, zero, zero_i), strict=True):
                phi.add_incoming(init, entry)
            sets.append(trio)
        builder.cbranch(builder.icmp_signed("<=", builder.add(bi, block), n), big_body, big_done)
        builder.position_at_end(big_body)
        for u, trio in enumerate(sets):
            x = builder.load(ptr_at(builder.add(bi, ir.Constant(i64, u * _LANES))), align=4)
            for phi, nxt in zip(trio, accumulate(x, *trio), strict=True):
                phi.add_incoming(nxt, big_body)
        bi.add_incoming(builder.add(bi, block), big_body)
        builder.branch(big_loop)
        builder.position_at_end(big_done)
        merged = list(sets[0])
        for trio in sets[1:]:
            merged = [
                builder.fadd(merged[0], trio[0]),
                builder.fadd(merged[1], trio[1]),
                builder.add(merged[2], trio[2]),
            ]
        builder.branch(loop)

        builder.position_at_end(loop)
        i = builder.phi(i64)
        s1 = builder.phi(vd)
        s2 = builder.phi(vd)
        cnt = builder.phi(vi)
        for phi, init in ((i, ir.Constant(i64, 0)), (s1, zero), (s2, zero), (cnt, zero_i)):
            phi.add_incoming(init, entry)
        for phi, init in ((i, bi), (s1, merged[0]), (s2, merged[1]), (cnt, merged[2])):
            phi.add_incoming(init, big_done)
        builder.cbranch(builder.icmp_signed("<", i, n), body, done)
        builder.position_at_end(body)
        mask = builder.icmp_signed("<", builder.add(splat(i, vi), lanes), n_vec)
        x = builder.call(masked_load, [ptr_at(i), align, mask, nan])
        s1_next, s2_next, cnt_next = accumulate(x, s1, s2, cnt)
        i_next = builder.add(i, ir.Constant(i64, _LANES))
        for phi, nxt in ((i, i_next), (s1, s1_next), (s2, s2_next), (cnt, cnt_next)):
            phi.add_incoming(nxt, body)
        builder.branch(loop)
        builder.position_at_end(done)

        def lane_sum(v):  # type: ignore[no-untyped-def]
            w = _LANES
            while w > 1:
                h = w // 2
                lo = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(i32, h), list(range(h))))
                hi = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(i32, h), list(range(h, w))))
                v = builder.add(lo, hi) if v.type.element == i64 else builder.fadd(lo, hi)
                w = h
            return builder.extract_element(v, ir.Constant(i32, 0))

        count = builder.uitofp(lane_sum(cnt), f64)
        return context.make_tuple(builder, signature.return_type, [count, lane_sum(s1), lane_sum(s2)])

    return sig, codegen


@njit(cache=True)
def chunk_slots(
    run_start: np.ndarray, run_len: np.ndarray, run_parcel: np.ndarray, n_parcels: int, n_chunks: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split the runs (raster order) into ``n_chunks`` bands of about equal pixel count.

    Within a chunk, each parcel gets a *slot* numbered in order of first appearance, so the
    accumulators of a chunk are touched almost sequentially (a sliding window of the parcels of
    a few rows) instead of at random parcel positions. Returns ``bounds`` (int64, run index of
    each chunk's first run, length ``n_chunks + 1``), ``slot`` (int32 per run, local to its
    chunk), ``slot_off`` (int64, first global slot of each chunk, length ``n_chunks + 1``) and
    ``owner`` (int32 parcel position of each global slot). A parcel cut by a chunk boundary
    has one slot in each chunk; their partial statistics are merged at the end.
    """
    n_runs = run_start.shape[0]
    total = 0
    for r in range(n_runs):
        total += run_len[r]
    bounds = np.empty(n_chunks + 1, dtype=np.int64)
    bounds[0] = 0
    done = 0
    c = 1
    for r in range(n_runs):
        done += run_len[r]
        while c < n_chunks and done * n_chunks >= total * c:
            bounds[c] = r + 1
            c += 1
    while c <= n_chunks:
        bounds[c] = n_runs
        c += 1
    slot = np.empty(n_runs, dtype=np.int32)
    last_chunk = np.full(n_parcels, -1, dtype=np.int64)
    local = np.zeros(n_parcels, dtype=np.int32)
    slot_off = np.zeros(n_chunks + 1, dtype=np.int64)
    owner = np.empty(n_runs, dtype=np.int32)
    n_slots = 0
    for c in range(n_chunks):
        k = 0
        for r in range(bounds[c], bounds[c + 1]):
            p = run_parcel[r]
            if last_chunk[p] != c:
                last_chunk[p] = c
                local[p] = k
                owner[n_slots] = p
                n_slots += 1
                k += 1
            slot[r] = local[p]
        slot_off[c + 1] = slot_off[c] + k
    return bounds, slot, slot_off, owner[:n_slots].copy()


@njit(parallel=True, cache=True)
def reduce_runs(
    values: np.ndarray,
    run_start: np.ndarray,
    run_len: np.ndarray,
    slot: np.ndarray,
    bounds: np.ndarray,
    slot_off: np.ndarray,
    owner: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    count: np.ndarray,
    plane0: int,
) -> None:
    """Fused per-parcel mean, population std and valid count over the planes of ``values``.

    ``values`` is ``(K, H*W)`` float32/float64 with NaN for invalid pixels. Each chunk of runs
    (:func:`chunk_slots`) is one ``prange`` iteration with its own accumulators, so every thread
    streams its band of rows of each plane forwards — only pixels inside parcels are read. Results
    for plane ``k`` go to column ``plane0 + k`` of ``mean``/``std`` (float64) and ``count``
    (int32), each ``(n_parcels, n_columns)``.

    Numerics: each (slot, plane) sums ``v - shift`` and ``(v - shift)**2`` in float64, with
    ``shift`` the first valid value met, which avoids the cancellation of ``E[x^2] - E[x]^2``; the
    chunk partials are merged with Chan et al.'s pairwise formula for (n, mean, M2).
    """
    n_planes = values.shape[0]
    n_px = values.shape[1]
    flat = values.reshape(-1)
    n_chunks = bounds.shape[0] - 1
    n_slots = slot_off[n_chunks]
    # acc[s, k] = (n, s1, s2, shift): the numbers of one (slot, plane) share a cache line, and
    # the planes of one slot follow each other. Initialised when the slot first appears.
    acc = np.empty((n_slots, n_planes, 4), dtype=np.float64)
    for c in prange(n_chunks):
        base = slot_off[c]
        fresh = 0
        for r in range(bounds[c], bounds[c + 1]):
            local = slot[r]
            s = base + local
            if local == fresh:
                for k in range(n_planes):
                    acc[s, k, 0] = 0.0
                    acc[s, k, 1] = 0.0
                    acc[s, k, 2] = 0.0
                    acc[s, k, 3] = 0.0
                fresh += 1
            a = run_start[r]
            b = a + run_len[r]
            # Flat indexing (no ``values[k]`` view): a view costs an atomic reference count
            # update on an array shared by all threads. Unsigned indices: numba guards signed
            # ones against negative values on every access.
            for k in range(n_planes):
                i0 = k * n_px + a
                b_k = k * n_px + b
                if acc[s, k, 0] == 0.0:
                    while i0 < b_k and flat[np.uint64(i0)] != flat[np.uint64(i0)]:
                        i0 += 1
                    if i0 == b_k:
                        continue
                    acc[s, k, 3] = np.float64(flat[np.uint64(i0)])
                n, s1, s2 = _run_sums(flat, i0, b_k, acc[s, k, 3])
                acc[s, k, 0] += n
                acc[s, k, 1] += s1
                acc[s, k, 2] += s2
    # Merge, single-threaded: a few operations per (slot, plane), while every parallel region
    # costs a wake-up of all threads (milliseconds when other processes hold the cores).
    # Parcels without any run keep count 0 (set by the caller).
    for c in range(n_chunks):
        for s in range(slot_off[c], slot_off[c + 1]):
            p = owner[s]
            for k in range(n_planes):
                n = acc[s, k, 0]
                if n == 0.0:
                    continue
                m = acc[s, k, 1] / n
                mean_c = acc[s, k, 3] + m
                m2_c = max(acc[s, k, 2] - n * m * m, 0.0)
                col = plane0 + k
                n_t = np.float64(count[p, col])
                if n_t == 0.0:
                    count[p, col] = np.int32(n)
                    mean[p, col] = mean_c
                    std[p, col] = m2_c  # M2 for now; turned into the std below
                else:
                    tot = n_t + n
                    delta = mean_c - mean[p, col]
                    mean[p, col] += delta * n / tot
                    std[p, col] += m2_c + delta * delta * n_t * n / tot
                    count[p, col] = np.int32(tot)
    for p in range(mean.shape[0]):
        for k in range(n_planes):
            col = plane0 + k
            if count[p, col] == 0:
                mean[p, col] = np.nan
                std[p, col] = np.nan
            else:
                std[p, col] = np.sqrt(std[p, col] / count[p, col])
