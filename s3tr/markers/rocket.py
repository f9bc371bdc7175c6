"""Random-convolution features for short regularly sampled series (MiniRocket/MultiRocket-style).

Written for the crop classifier (:mod:`s3tr.markers.crop`): the series are the day-of-season curves of
:func:`~s3tr.markers.crop.build_features`, already on a fixed grid, so no time warping is needed.

Each of the 84 kernels of length 9 has weights -1 except three taps of weight 2 (every choice of 3 taps out
of 9, so each kernel sums to zero and ignores the series' level). Each kernel is applied at a few dilations
(1 up to the largest that still fits the series), half of the kernel/dilation pairs on the zero-padded
series. Every convolution output is thresholded at a few biases drawn as quantiles of the output on random
training series; per bias four pooled values are kept (MultiRocket's): the proportion of positive values
(PPV), the mean of the positive values (MPV), the mean relative position of the positive values (MIPV) and
the longest run of positive values (LSPV). The same is done on the first difference of the series.

The transform is fitted (biases) on the training series only and is deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

__all__ = ["RocketTransform"]

_KERNEL_LENGTH = 9
#: Positions of the three weight-2 taps of the 84 kernels.
_TRIPLES = np.array(
    [(a, b, c) for a in range(9) for b in range(a + 1, 9) for c in range(b + 1, 9)], dtype=np.int64
)
_N_OPS = 4


@njit(cache=True)
def _conv(x: np.ndarray, triple: np.ndarray, d: int, pad: bool, out: np.ndarray) -> int:
    """Write the convolution of ``x`` with one kernel at dilation ``d`` into ``out``; return its length."""
    n = x.shape[0]
    half = 4 * d
    start, stop = (0, n) if pad else (half, n - half)
    m = 0
    for t in range(start, stop):
        total = 0.0
        big = 0.0
        for j in range(_KERNEL_LENGTH):
            k = t + (j - 4) * d
            if 0 <= k < n:
                v = x[k]
                total += v
                if j == triple[0] or j == triple[1] or j == triple[2]:
                    big += v
        # weights -1 everywhere and +2 on the triple: 3 * (triple sum) - (total)
        out[m] = 3.0 * big - total
        m += 1
    return m


@njit(cache=True)
def _fit_biases(
    x: np.ndarray, dil: np.ndarray, pad: np.ndarray, kern: np.ndarray, rows: np.ndarray, quant: np.ndarray
) -> np.ndarray:
    """Biases (n_pairs, n_bias): quantiles ``quant`` of each pair's output on training series ``rows``."""
    n_pairs = dil.shape[0]
    nb = quant.shape[1]
    out = np.empty((n_pairs, nb))
    buf = np.empty(x.shape[1])
    for p in range(n_pairs):
        m = _conv(x[rows[p]], _TRIPLES[kern[p]], dil[p], pad[p], buf)
        if m == 0:
            out[p, :] = 0.0
            continue
        c = np.sort(buf[:m].copy())
        for q in range(nb):
            out[p, q] = c[min(m - 1, int(quant[p, q] * m))]
    return out


@njit(cache=True)
def _transform(
    x: np.ndarray, dil: np.ndarray, pad: np.ndarray, kern: np.ndarray, biases: np.ndarray
) -> np.ndarray:
    n_pairs, nb = biases.shape
    out = np.zeros((x.shape[0], n_pairs * nb * _N_OPS))
    buf = np.empty(x.shape[1])
    for i in range(x.shape[0]):
        for p in range(n_pairs):
            m = _conv(x[i], _TRIPLES[kern[p]], dil[p], pad[p], buf)
            if m == 0:
                continue
            for q in range(nb):
                b = biases[p, q]
                cnt = 0
                pos_sum = 0.0
                idx_sum = 0.0
                run = 0
                best = 0
                for t in range(m):
                    v = buf[t] - b
                    if v > 0:
                        cnt += 1
                        pos_sum += v
                        idx_sum += t
                        run += 1
                        if run > best:
                            best = run
                    else:
                        run = 0
                col = (p * nb + q) * _N_OPS
                out[i, col] = cnt / m
                out[i, col + 1] = pos_sum / cnt if cnt else 0.0
                out[i, col + 2] = idx_sum / cnt / m if cnt else -1.0
                out[i, col + 3] = best / m
    return out


@dataclass
class RocketTransform:
    """Fitted random-convolution transform of fixed-length series.

    Parameters
    ----------
    n_dilations
        Number of dilations (log-spaced from 1 to ``(length - 1) / 8``, duplicates removed).
    n_biases
        Biases per kernel/dilation pair.
    diff
        Also transform the first difference of the series.
    seed
        Random seed (choice of the series that give the biases).
    """

    n_dilations: int = 6
    n_biases: int = 4
    diff: bool = True
    seed: int = 0

    def _pairs(self, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        max_exp = np.log2(max(1.0, (length - 1) / (_KERNEL_LENGTH - 1)))
        dils = np.unique(np.floor(2.0 ** np.linspace(0, max_exp, self.n_dilations)).astype(np.int64))
        dil = np.repeat(dils, len(_TRIPLES))
        kern = np.tile(np.arange(len(_TRIPLES), dtype=np.int64), len(dils))
        # Alternate padding so that both the edges and the interior are seen at every dilation.
        pad = (kern + np.repeat(np.arange(len(dils)), len(_TRIPLES))) % 2 == 0
        # Without padding a dilation must leave at least one output: pad the pairs that would not.
        pad |= (dil * (_KERNEL_LENGTH - 1)) >= length
        return dil, pad, kern

    def _inputs(self, x: np.ndarray) -> list[np.ndarray]:
        x = np.ascontiguousarray(x, dtype=np.float64)
        return [x, np.ascontiguousarray(np.diff(x, axis=1))] if self.diff else [x]

    def fit(self, x: np.ndarray) -> RocketTransform:
        """Draw the biases from the training series ``x`` (n, length)."""
        rng = np.random.default_rng(self.seed)
        self.params_: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        for series in self._inputs(x):
            dil, pad, kern = self._pairs(series.shape[1])
            rows = rng.integers(0, series.shape[0], dil.shape[0])
            quant = rng.uniform(0.1, 0.9, (dil.shape[0], self.n_biases))
            biases = _fit_biases(series, dil, pad, kern, rows, quant)
            self.params_.append((dil, pad, kern, biases))
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Features (n, n_features) of series ``x`` (n, length), float32 to halve memory."""
        blocks = [
            _transform(series, dil, pad, kern, biases).astype(np.float32)
            for series, (dil, pad, kern, biases) in zip(self._inputs(x), self.params_, strict=True)
        ]
        return np.hstack(blocks)
