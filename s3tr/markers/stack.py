"""Crop classifier: the crop trees stacked with random-convolution features and ridge heads.

What ``s3tr markers crop train`` fits by default (``classifier="auto"`` of
:func:`~s3tr.markers.crop.train_crop_model`, up to :data:`~s3tr.markers.crop.STACK_MAX_ROWS` training rows).
On UCR Crop (nested 5-fold stratified CV, ``benchmarks/quality.py --only ucr``, 2026-11-29) it reaches
accuracy 0.790 (95 % CI 0.780-0.799; calibrated trees 0.775), ECE 0.014 (0.027) and coverage at p >= 0.9 of
0.491 (0.42) with precision 0.987 there, short of the 0.99 the control asks; through the CLI, trained on
5,760 series and scored on the other 1,440: accuracy 0.799, ECE 0.028, coverage 0.509 at precision 0.9905.
Training on all 7,200 series takes 91 s (2.5 GB peak) on 2 quiet cores, 256 s under load 4.5; the saved
model is about 50 MB. Without the kernel heads (``kernels=False``): 0.784, ECE 0.023, coverage 0.468,
precision 0.9896.

Fit: out-of-fold class scores of (a) extremely randomised trees on the whole feature vector, (b) a ridge
regression on :class:`~s3tr.markers.rocket.RocketTransform` features of the raw day-of-season curves and (c)
two Gaussian-kernel ridge regressions, on the standardised feature vector and on the standardised raw curves;
a multinomial logistic regression on ``[log(p_trees + 0.01), ridge scores, kernel scores]`` turns them into
calibrated probabilities; the base models are then refitted on all the data.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sl
from sklearn.base import BaseEstimator, ClassifierMixin

from s3tr.markers.rocket import RocketTransform

__all__ = ["RocketStackClassifier"]

#: Rows predicted at once (the kernel heads' matrices are this many rows by the training rows).
_PREDICT_BLOCK = 2048


class RocketStackClassifier(ClassifierMixin, BaseEstimator):
    """Trees + random-convolution ridge, stacked by a logistic regression.

    Parameters
    ----------
    curve_blocks
        ``(start, length)`` of each raw curve inside a feature row (default the first 46 columns: the NDVI
        bins of the default :class:`~s3tr.markers.crop.CropFeatureConfig`).
    seed
        Random seed (folds, trees, convolution biases).
    n_estimators, max_features
        The trees.
    alpha
        Ridge penalty on the standardised convolution features.
    kernels
        Add the Gaussian-kernel ridge heads (they keep the training rows' standardised features: about 17 MB
        on UCR Crop).
    gamma_features, gamma_curves, kernel_alpha
        Kernel ``exp(-gamma * mean squared difference of the standardised columns)`` of the feature-vector
        and raw-curve heads, and their ridge penalty.
    c
        Inverse penalty of the stacking logistic regression.
    cv
        Folds of the out-of-fold scores (fewer when the rarest class is smaller), or explicit
        ``(train, test)`` index splits (e.g. grouped by parcel when rows are pixels).
    n_jobs
        Tree-fitting processes.

    Notes
    -----
    The out-of-fold folds are stratified, not grouped: with several rows per parcel (pixels) the stacker
    would see near-duplicates on both sides and become over-confident; use it on one row per parcel.
    """

    def __init__(
        self,
        curve_blocks: tuple[tuple[int, int], ...] = ((0, 46),),
        seed: int = 0,
        n_estimators: int = 400,
        max_features: float = 0.1,
        alpha: float = 1000.0,
        kernels: bool = True,
        gamma_features: float = 0.5,
        gamma_curves: float = 1.0,
        kernel_alpha: float = 0.01,
        c: float = 0.1,
        cv: int | list[tuple[np.ndarray, np.ndarray]] = 5,
        n_jobs: int = 2,
    ) -> None:
        self.curve_blocks = curve_blocks
        self.seed = seed
        self.n_estimators = n_estimators
        self.max_features = max_features
        self.alpha = alpha
        self.kernels = kernels
        self.gamma_features = gamma_features
        self.gamma_curves = gamma_curves
        self.kernel_alpha = kernel_alpha
        self.c = c
        self.cv = cv
        self.n_jobs = n_jobs

    @classmethod
    def for_config(cls, config: object, **kwargs: object) -> RocketStackClassifier:
        """A classifier whose ``curve_blocks`` are the raw curves of every column of ``config``.

        ``config`` is a :class:`~s3tr.markers.crop.CropFeatureConfig`; each column's features start with its
        ``n_bins`` raw bins and every column has the same number of features.
        """
        per_column = len(config.feature_names()) // len(config.columns)
        blocks = tuple((i * per_column, config.n_bins) for i in range(len(config.columns)))
        return cls(curve_blocks=blocks, **kwargs)

    def _trees(self, seed: int) -> object:
        from sklearn.ensemble import ExtraTreesClassifier

        return ExtraTreesClassifier(
            n_estimators=self.n_estimators,
            max_features=self.max_features,
            n_jobs=self.n_jobs,
            random_state=seed,
        )

    def _rocket(self, x: np.ndarray) -> np.ndarray:
        blocks = [
            rt.transform(x[:, s : s + n]) for rt, (s, n) in zip(self.rockets_, self.curve_blocks, strict=True)
        ]
        return ((np.hstack(blocks) - self.mean_) / self.scale_).astype(np.float32)

    def _views(self, x: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """The kernel heads' inputs (standardised feature vector, standardised raw curves) and gammas."""
        if not self.kernels:
            return []
        z = (x - self.kmean_) / self.kscale_
        curves = np.hstack([z[:, s : s + n] for s, n in self.curve_blocks])
        return [(z, self.gamma_features), (curves, self.gamma_curves)]

    def _stack_input(self, trees: np.ndarray, *scores: np.ndarray) -> np.ndarray:
        return np.hstack([np.log(trees + 0.01), *scores])

    def fit(self, x: np.ndarray, y: np.ndarray) -> RocketStackClassifier:
        """Fit on a feature matrix ``x`` (n, n_features) and labels ``y``."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold

        x = np.asarray(x, dtype=float)
        y = np.asarray(y)
        self.classes_, yi = np.unique(y, return_inverse=True)
        self.n_features_in_ = x.shape[1]
        if isinstance(self.cv, int | np.integer):
            n_folds = int(min(self.cv, np.bincount(yi).min()))
            if n_folds < 2:
                raise ValueError("every class needs at least 2 examples for the out-of-fold scores")
            folds = list(StratifiedKFold(n_folds, shuffle=True, random_state=self.seed).split(x, yi))
        else:
            folds = [(np.asarray(tr), np.asarray(te)) for tr, te in self.cv]

        trees = np.zeros((len(y), len(self.classes_)))
        for k, (tr, te) in enumerate(folds):
            fold = self._trees(self.seed + k).fit(x[tr], yi[tr])
            # Grouped splits can leave a rare class out of a fold's training rows: its column stays 0.
            trees[np.ix_(te, fold.classes_)] = fold.predict_proba(x[te])

        # The transform is unsupervised (biases are quantiles of the series): fitted once on all rows.
        self.rockets_ = [
            RocketTransform(n_dilations=6, n_biases=4, seed=self.seed + i).fit(x[:, s : s + n])
            for i, (s, n) in enumerate(self.curve_blocks)
        ]
        self.mean_, self.scale_ = 0.0, 1.0
        raw = self._rocket(x)
        self.mean_ = raw.mean(0)
        sd = raw.std(0)
        self.scale_ = np.where(sd > 0, sd, 1.0)
        f = ((raw - self.mean_) / self.scale_).astype(np.float32)
        del raw
        # Dual ridge: one Gram matrix serves every fold and the final fit (n << n_features).
        gram = (f @ f.T).astype(np.float64)
        targets = -np.ones((len(y), len(self.classes_)))
        targets[np.arange(len(y)), yi] = 1.0
        ridge = np.zeros_like(targets)
        for tr, te in folds:
            mean = targets[tr].mean(0)
            dual = self._solve(gram[np.ix_(tr, tr)], targets[tr] - mean)
            ridge[te] = gram[np.ix_(te, tr)] @ dual + mean
        self.ridge_intercept_ = targets.mean(0)
        dual = self._solve(gram, targets - self.ridge_intercept_)
        self.ridge_coef_ = (f.T.astype(np.float64) @ dual).astype(np.float32)
        del gram, f

        self.kmean_ = x.mean(0)
        sd = x.std(0)
        self.kscale_ = np.where(sd > 0, sd, 1.0)
        self.kernel_train_, self.kernel_dual_, kernel_oof = [], [], []
        for v, gamma in self._views(x):
            # float32 as kept for prediction, so that fit and prediction see the same kernel.
            v = v.astype(np.float32)
            k = _rbf(v, v, gamma)
            oof = np.zeros_like(targets)
            for tr, te in folds:
                mean = targets[tr].mean(0)
                oof[te] = (
                    k[np.ix_(te, tr)] @ self._solve(k[np.ix_(tr, tr)], targets[tr] - mean, self.kernel_alpha)
                    + mean
                )
            kernel_oof.append(oof)
            self.kernel_train_.append(v)
            self.kernel_dual_.append(self._solve(k, targets - self.ridge_intercept_, self.kernel_alpha))
            del k

        z = self._stack_input(trees, ridge, *kernel_oof)
        self.stacker_ = LogisticRegression(C=self.c, max_iter=2000).fit(z, yi)
        self.trees_ = self._trees(self.seed).fit(x, yi)
        return self

    def _solve(self, gram: np.ndarray, rhs: np.ndarray, alpha: float | None = None) -> np.ndarray:
        alpha = self.alpha if alpha is None else alpha
        factor = sl.cho_factor(gram + alpha * np.eye(gram.shape[0]), overwrite_a=False)
        return sl.cho_solve(factor, rhs)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities (n, n_classes), columns in ``classes_`` order.

        Rows go by blocks of ``_PREDICT_BLOCK``: the kernel heads build a (rows, training rows) matrix, which
        for a nightly chunk of 20,000 parcels and 7,200 training series would take over 1 GB per head.
        """
        x = np.asarray(x, dtype=float)
        if len(x) > _PREDICT_BLOCK:
            return np.vstack(
                [self.predict_proba(x[i : i + _PREDICT_BLOCK]) for i in range(0, len(x), _PREDICT_BLOCK)]
            )
        trees = self.trees_.predict_proba(x)
        ridge = self._rocket(x).astype(np.float64) @ self.ridge_coef_ + self.ridge_intercept_
        kernel = [
            _rbf(v, train, gamma) @ dual + self.ridge_intercept_
            for (v, gamma), train, dual in zip(
                self._views(x), self.kernel_train_, self.kernel_dual_, strict=True
            )
        ]
        return self.stacker_.predict_proba(self._stack_input(trees, ridge, *kernel))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Most probable class of each row."""
        return self.classes_[self.predict_proba(x).argmax(1)]


def _rbf(a: np.ndarray, b: np.ndarray, gamma: float) -> np.ndarray:
    """Gaussian kernel ``exp(-gamma * mean over columns of (a_i - b_j)**2)``, (len(a), len(b)) float64."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.exp(-gamma * np.maximum(d, 0.0) / a.shape[1])
