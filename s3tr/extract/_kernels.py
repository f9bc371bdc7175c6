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

# Vector width (float64 lanes) of the run loop. 4 lanes beat 8 on the benchmark tile (AVX-512
# machine): most runs are 5 to 20 pixels long, and wider steps waste more lanes at run ends.
_LANES = 4
# Planes reduced together by one pass over a run (see _accumulate_planes); the rest goes through
# passes of 4, 2 and 1. 8 planes keep their 16 vector accumulators in registers (AVX-512 has
# 32); 5 and 10 measured no faster than 8 on the benchmark tile.
_GROUP = 8


def _subgroups(n: int) -> list[tuple[int, int]]:
    """``(first, size)`` of consecutive subgroups of 4, then 2, then 1 covering ``range(n)``."""
    out, g = [], 0
    for size in (4, 2, 1):
        while g + size <= n:
            out.append((g, size))
            g += size
    return out


@intrinsic(prefer_literal=True)
def _accumulate_planes(typingctx, arr, start, stop, stride, acc, offset, acc_stride, n_group):  # type: ignore[no-untyped-def]
    """Add the sums of one run over ``n_group`` consecutive planes to their accumulators.

    Plane ``g`` of the run is ``arr[start + g * stride : stop + g * stride]``. ``acc`` is the
    flattened ``(n_slots, 4, acc_stride)`` accumulator array and ``offset`` the flat position of
    ``acc[slot, 0, k]``, ``k`` the group's first plane: the valid count, ``sum(v - shift)`` and
    ``sum((v - shift)**2)`` of plane ``k + g`` are added to ``acc[slot, 0..2, k + g]``, and
    ``shift`` is read from ``acc[slot, 3, k + g]``.

    A hand-written LLVM vector loop. The planes share the loop: a step loads 4 pixels of each
    plane at the same position, under one mask, into independent accumulators, and the run ends
    with one transposed reduction of the group's vectors. Sharing is what pays: most runs are 5
    to 20 pixels long, so the fixed costs of a run (the loop exit, which the CPU cannot predict
    since it depends on the run length, and the reduction of the vector lanes) weigh as much as
    the pixels, and a group pays them once for ``n_group`` planes. The masked load reads lanes
    past ``stop`` as NaN, so they drop out like invalid pixels and nothing past the run is
    touched. The NaN test is exact (``fcmp uno``); sums are IEEE float64 with the squares fused
    (``fma``); the order of the additions differs from a sequential sum by rounding only.
    """
    if not (
        isinstance(arr, types.Array)
        and arr.ndim == 1
        and arr.layout == "C"  # the loop walks the data pointer with unit stride
        and arr.dtype in (types.float32, types.float64)
        and isinstance(acc, types.Array)
        and acc.ndim == 1
        and acc.layout == "C"
        and acc.dtype == types.float64
        and isinstance(n_group, types.IntegerLiteral)
        and 1 <= n_group.literal_value <= 16
    ):
        return None
    n_planes = n_group.literal_value
    sig = types.void(arr, start, stop, stride, acc, offset, acc_stride, n_group)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        arrty = signature.args[0]
        ary = context.make_array(arrty)(context, builder, args[0])
        accary = context.make_array(signature.args[4])(context, builder, args[4])

        def as_i64(k):  # type: ignore[no-untyped-def]
            return context.cast(builder, args[k], signature.args[k], types.int64)

        i0, i1, plane_stride, off, q_stride = as_i64(1), as_i64(2), as_i64(3), as_i64(5), as_i64(6)
        i32, i64, f64 = ir.IntType(32), ir.IntType(64), ir.DoubleType()
        elt = ir.FloatType() if arrty.dtype == types.float32 else f64
        vt, vd, vi = ir.VectorType(elt, _LANES), ir.VectorType(f64, _LANES), ir.VectorType(i64, _LANES)
        zero = ir.Constant(vd, [0.0] * _LANES)

        def splat(val, vty):  # type: ignore[no-untyped-def]
            undef = ir.Constant(vty, ir.Undefined)
            v = builder.insert_element(undef, val, ir.Constant(i32, 0))
            return builder.shuffle_vector(v, undef, ir.Constant(ir.VectorType(i32, _LANES), [0] * _LANES))

        def shuffle(a, b, idx):  # type: ignore[no-untyped-def]
            return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(i32, len(idx)), idx))

        def acc_at(q, g):  # type: ignore[no-untyped-def]
            """Pointer to acc[slot, q, k + g]."""
            pos = builder.add(builder.mul(q_stride, ir.Constant(i64, q)), ir.Constant(i64, g))
            pos = builder.add(off, pos)
            return builder.gep(accary.data, [pos])

        def acc_ptr(q, g, size):  # type: ignore[no-untyped-def]
            """acc[slot, q, k + g : k + g + size], as one vector."""
            return builder.bitcast(acc_at(q, g), ir.PointerType(ir.VectorType(f64, size)))

        shifts = [splat(builder.load(acc_at(3, g)), vd) for g in range(n_planes)]
        n = builder.sub(i1, i0)
        n_vec = splat(n, vi)
        bases = [
            builder.gep(ary.data, [builder.add(i0, builder.mul(plane_stride, ir.Constant(i64, g)))])
            for g in range(n_planes)
        ]
        suffix = f"v{_LANES}{'f32' if elt is not f64 else 'f64'}"
        load_ty = ir.FunctionType(vt, [ir.PointerType(vt), i32, ir.VectorType(ir.IntType(1), _LANES), vt])
        masked_load = cgutils.get_or_insert_function(builder.module, load_ty, f"llvm.masked.load.{suffix}.p0")
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vd, [vd, vd, vd]), f"llvm.fma.v{_LANES}f64"
        )
        popcount = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(i64, [i64]), "llvm.ctpop.i64"
        )
        lanes = ir.Constant(vi, list(range(_LANES)))
        nan = ir.Constant(vt, [float("nan")] * _LANES)
        align = ir.Constant(i32, 4 if elt is not f64 else 8)

        entry = builder.basic_block
        loop = builder.append_basic_block("run.loop")
        body = builder.append_basic_block("run.body")
        done = builder.append_basic_block("run.done")
        builder.branch(loop)

        builder.position_at_end(loop)
        i = builder.phi(i64)
        i.add_incoming(ir.Constant(i64, 0), entry)
        sums = []  # per plane: (count, s1, s2) phis; the count is a scalar integer
        for _ in range(n_planes):
            trio = (builder.phi(i64), builder.phi(vd), builder.phi(vd))
            trio[0].add_incoming(ir.Constant(i64, 0), entry)
            for phi in trio[1:]:
                phi.add_incoming(zero, entry)
            sums.append(trio)
        builder.cbranch(builder.icmp_signed("<", i, n), body, done)

        builder.position_at_end(body)
        mask = builder.icmp_signed("<", builder.add(splat(i, vi), lanes), n_vec)
        for base, shift, (cnt, s1, s2) in zip(bases, shifts, sums, strict=True):
            ptr = builder.bitcast(builder.gep(base, [i]), ir.PointerType(vt))
            x = builder.call(masked_load, [ptr, align, mask, nan])
            xd = builder.fpext(x, vd) if elt is not f64 else x
            bad = builder.fcmp_unordered("uno", xd, xd)
            d = builder.select(bad, zero, builder.fsub(xd, shift))
            # The count on the integer units (a popcount of the valid lanes), which are idle,
            # rather than as one more float addition on the two busy adder pipes.
            good = builder.bitcast(builder.not_(bad), ir.IntType(_LANES))
            n_good = builder.call(popcount, [builder.zext(good, i64)])
            cnt.add_incoming(builder.add(cnt, n_good), body)
            s1.add_incoming(builder.fadd(s1, d), body)
            s2.add_incoming(builder.call(fma, [d, d, s2]), body)
        i.add_incoming(builder.add(i, ir.Constant(i64, _LANES)), body)
        builder.branch(loop)

        builder.position_at_end(done)

        def lane_totals(vs):  # type: ignore[no-untyped-def]
            """Transposed reduction: ``[sum(vs[0]), sum(vs[1]), ...]`` for 1, 2 or 4 vectors of 4 lanes."""
            if len(vs) == 1:
                v = vs[0]
                h = builder.fadd(shuffle(v, v, [0, 1]), shuffle(v, v, [2, 3]))
                return shuffle(builder.fadd(h, shuffle(h, h, [1, 0])), h, [0])
            # pairs: [a0+a1, b0+b1, a2+a3, b2+b3]
            pairs = [
                builder.fadd(shuffle(a, b, [0, 4, 2, 6]), shuffle(a, b, [1, 5, 3, 7]))
                for a, b in zip(vs[::2], vs[1::2], strict=True)
            ]
            if len(pairs) == 1:
                u = pairs[0]
                return builder.fadd(shuffle(u, u, [0, 1]), shuffle(u, u, [2, 3]))
            u, w = pairs
            return builder.fadd(shuffle(u, w, [0, 1, 4, 5]), shuffle(u, w, [2, 3, 6, 7]))

        for g, (cnt, _, _) in enumerate(sums):
            ptr = acc_at(0, g)
            builder.store(builder.fadd(builder.load(ptr), builder.uitofp(cnt, f64)), ptr)
        for q in (1, 2):
            # by subgroups of 4, 2 or 1 planes: one transposed reduction and one vector update each
            for g0, size in _subgroups(n_planes):
                vs = [trio[q] for trio in sums[g0 : g0 + size]]
                ptr = acc_ptr(q, g0, size)
                builder.store(builder.fadd(builder.load(ptr, align=8), lane_totals(vs)), ptr, align=8)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True)
def chunk_slots(
    run_start: np.ndarray, run_len: np.ndarray, run_parcel: np.ndarray, n_parcels: int, n_chunks: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split the runs (raster order) into ``n_chunks`` bands of about equal pixel count.

    Within a chunk, each parcel gets a *slot* numbered in order of first appearance, so the
    accumulators of a chunk are touched almost sequentially (a sliding window of the parcels of
    a few rows) instead of at random parcel positions. Returns ``bounds`` (int64, run index of
    each chunk's first run, length ``n_chunks + 1``), ``slot`` (int32 per run, local to its
    chunk), ``slot_off`` (int64, first global slot of each chunk, length ``n_chunks + 1``) and
    ``owner`` (int32 parcel position of each global slot), ``split`` (bool per global slot: its
    parcel has slots in several chunks) and ``absent`` (int32 positions of the parcels without
    any run). A parcel cut by a chunk boundary has one slot in each chunk; their partial
    statistics are merged at the end.
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
    owner = owner[:n_slots].copy()
    n_chunks_of = np.zeros(n_parcels, dtype=np.int32)
    for i in range(n_slots):
        n_chunks_of[owner[i]] += 1
    split = np.empty(n_slots, dtype=np.bool_)
    for i in range(n_slots):
        split[i] = n_chunks_of[owner[i]] > 1
    absent = np.flatnonzero(n_chunks_of == 0).astype(np.int32)
    return bounds, slot, slot_off, owner, split, absent


@njit(parallel=True, cache=True)
def reduce_runs(
    values: np.ndarray,
    run_start: np.ndarray,
    run_len: np.ndarray,
    slot: np.ndarray,
    bounds: np.ndarray,
    slot_off: np.ndarray,
    owner: np.ndarray,
    split: np.ndarray,
    absent: np.ndarray,
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

    A parcel wholly inside one chunk is finished by its thread; the few cut by a chunk boundary
    (``split``) are merged afterwards, and the parcels without any pixel (``absent``) get NaN.

    Numerics: each (slot, plane) sums ``v - shift`` and ``(v - shift)**2`` in float64, with
    ``shift`` the first valid value met, which avoids the cancellation of ``E[x^2] - E[x]^2``; the
    chunk partials are merged with Chan et al.'s pairwise formula for (n, mean, M2).
    """
    n_planes = values.shape[0]
    n_px = values.shape[1]
    flat = values.reshape(-1)
    n_chunks = bounds.shape[0] - 1
    n_slots = slot_off[n_chunks]
    # acc[s, q, k]: q = 0 valid count, 1 sum(v - shift), 2 sum((v - shift)**2), 3 shift, so that
    # each quantity of a group of planes is one vector. Zeroed when the slot first appears.
    acc = np.empty((n_slots, 4, n_planes), dtype=np.float64)
    # Whether every plane of a slot has its shift yet (most runs skip the search below).
    ready = np.zeros(n_slots, dtype=np.bool_)
    # Flat view made once, outside the parallel loop: a view taken inside costs an atomic
    # reference count update on an array shared by all threads.
    accf = acc.reshape(-1)
    for c in prange(n_chunks):
        base = slot_off[c]
        fresh = 0
        for r in range(bounds[c], bounds[c + 1]):
            local = slot[r]
            s = base + local
            o = s * 4 * n_planes  # accf position of acc[s, 0, 0]
            if local == fresh:
                for j in range(4 * n_planes):
                    accf[o + j] = 0.0
                fresh += 1
            a = run_start[r]
            b = a + run_len[r]
            if not ready[s]:
                # The shift of a (slot, plane) is its first valid value; a plane without any
                # valid pixel so far keeps looking (its shift is unused until then: NaNs add
                # nothing). Unsigned indices: numba guards signed ones against negative values.
                missing = 0
                for k in range(n_planes):
                    if accf[o + k] == 0.0:
                        missing += 1
                        for i in range(k * n_px + a, k * n_px + b):
                            x = flat[np.uint64(i)]
                            if x == x:
                                accf[o + 3 * n_planes + k] = np.float64(x)
                                missing -= 1
                                break
                ready[s] = missing == 0
            k = 0
            while k + _GROUP <= n_planes:
                _accumulate_planes(flat, k * n_px + a, k * n_px + b, n_px, accf, o + k, n_planes, _GROUP)
                k += _GROUP
            while k + 4 <= n_planes:
                _accumulate_planes(flat, k * n_px + a, k * n_px + b, n_px, accf, o + k, n_planes, 4)
                k += 4
            if k + 2 <= n_planes:
                _accumulate_planes(flat, k * n_px + a, k * n_px + b, n_px, accf, o + k, n_planes, 2)
                k += 2
            if k < n_planes:
                _accumulate_planes(flat, k * n_px + a, k * n_px + b, n_px, accf, o + k, n_planes, 1)
        # The parcels wholly inside this chunk are final: written here, in parallel.
        for s in range(base, slot_off[c + 1]):
            if split[s]:
                continue
            p = owner[s]
            for k in range(n_planes):
                n = acc[s, 0, k]
                col = plane0 + k
                count[p, col] = np.int32(n)
                if n == 0.0:
                    mean[p, col] = np.nan
                    std[p, col] = np.nan
                else:
                    m = acc[s, 1, k] / n
                    mean[p, col] = acc[s, 3, k] + m
                    std[p, col] = np.sqrt(max(acc[s, 2, k] - n * m * m, 0.0) / n)
    # Slots of split parcels (cut by a chunk boundary), single-threaded: a few operations per
    # (slot, plane) for the few parcels on a boundary, while every parallel region costs a
    # wake-up of all threads (milliseconds when other processes hold the cores).
    for s in range(n_slots):
        if not split[s]:
            continue
        p = owner[s]
        for k in range(n_planes):
            n = acc[s, 0, k]
            if n == 0.0:
                continue
            m = acc[s, 1, k] / n
            mean_c = acc[s, 3, k] + m
            m2_c = max(acc[s, 2, k] - n * m * m, 0.0)
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
    finished = np.zeros(mean.shape[0], dtype=np.bool_)
    for s in range(n_slots):
        p = owner[s]
        if split[s] and not finished[p]:
            finished[p] = True
            for k in range(n_planes):
                col = plane0 + k
                if count[p, col] == 0:
                    mean[p, col] = np.nan
                    std[p, col] = np.nan
                else:
                    std[p, col] = np.sqrt(std[p, col] / count[p, col])
    for i in range(absent.shape[0]):
        for k in range(n_planes):
            mean[absent[i], plane0 + k] = np.nan
            std[absent[i], plane0 + k] = np.nan
