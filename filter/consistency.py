"""Stage 2 of Algorithm 1: VAE-Seq (inner-sequence consistency) and its K-means band (paper §3.5)."""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans

from filter.similarity import unit_frames

KMEANS_N_INIT = 10


def vae_seq(latents: np.ndarray, chunk_size: int = 512) -> np.ndarray:
    """VAE-Seq per clip: mean cosine similarity of flattened latents over consecutive frame pairs.

    `latents` (N, F, ...) of any float dtype; computed in float32, `chunk_size` clips at a time.
    """
    out = np.empty(latents.shape[0], dtype=np.float64)
    for start in range(0, latents.shape[0], chunk_size):
        units = unit_frames(latents[start : start + chunk_size])
        # unit frames, then dot products: 2.5x faster than F.cosine_similarity here, same values
        cosines = (units[:, 1:] * units[:, :-1]).sum(dim=-1)
        out[start : start + units.shape[0]] = cosines.mean(dim=1).double().numpy()
    return out


def consistency_band(values: np.ndarray, k: int, seed: int) -> tuple[float, float]:
    """Band [t_l, t_h] from K-means on the VAE-Seq of all clips (Alg. 1 line 22).

    With centroids c_1 < ... < c_k: t_l = (c_1 + c_2) / 2 and t_h = (c_{k-1} + c_k) / 2, so the band
    drops the lowest (inconsistent) and highest (static) clusters. With fewer than k distinct values,
    k becomes the distinct count; with fewer than 3 there is no middle cluster and the band is
    [min, max] (keeps everything).
    """
    distinct = np.unique(values)
    n_clusters = min(k, distinct.size)
    if n_clusters < 3:
        return float(distinct[0]), float(distinct[-1])
    # sorted, so the band does not depend on the order in which clips come in
    samples = np.sort(values).reshape(-1, 1)
    kmeans = KMeans(n_clusters=n_clusters, n_init=KMEANS_N_INIT, random_state=seed).fit(samples)
    centroids = np.sort(kmeans.cluster_centers_.ravel())
    return float((centroids[0] + centroids[1]) / 2), float((centroids[-2] + centroids[-1]) / 2)
