"""Part 4: retrieve similar music with embeddings, and measure how often the neighbours share the genre.

Query by example: for every clip of a split, find the k clips whose embeddings are most similar to
it (cosine similarity, the clip itself left out) and count how many of them have the query's genre.
Good embeddings put clips of the same genre close together even though they were never trained to
(musicnn was trained on tags, not on these genres)::

    emb (N, d) --nearest_neighbours(emb, k)--> neighbours (N, k) --precision_at_k / map_at_k(., labels, k)--> float

Worked example (k = 2, labels [0, 0, 1]): if clip 0's ranked neighbours are [2, 1], its top 2 hold one
clip of genre 0, so its precision@2 is 1/2; its average precision@2 is (precision@2 at rank 2 = 1/2)
divided by min(k = 2, clips of genre 0 other than clip 0 = 1) = 1/2.
"""

from __future__ import annotations

import numpy as np


def nearest_neighbours(emb, k: int = 10) -> np.ndarray:
    """The k most similar other items of every item, by cosine similarity.

    Args:
        emb: (N, d) float array (numpy, or anything ``np.asarray`` accepts), one embedding per item, N >= 2.
        k: neighbours per item, 1 <= k <= N - 1 (k = N - 1 gives the full ranking).

    Returns:
        int64 numpy array (N, k). Row i holds the indices of the k items j != i with the highest cosine
        similarity  cos(i, j) = <e_i, e_j> / (|e_i| |e_j|),  most similar first. The query i itself is
        never in row i, not even when another item is identical to it (a copy of the query IS a
        neighbour, at similarity 1). Equal similarities: the lower index comes first. A row of zeros
        has similarity 0 with every item.

    Raises ValueError (one line naming the argument) when emb is not 2-D, has fewer than 2 rows or holds
    NaN/inf, or when k is outside 1..N-1.
    Hint: normalise the rows, one matrix product gives all similarities; exclude the diagonal (e.g.
    set it to -inf) and sort each row with np.argsort(-sim, axis=1, kind="stable") (stable keeps the
    lower index first among equals; float64 avoids ties broken by rounding).
    """
    emb = np.asarray(emb, dtype=np.float64)
    if emb.ndim != 2 or emb.shape[0] < 2:
        raise ValueError(f"nearest_neighbours: emb must have shape (N >= 2, d), got {emb.shape}")
    if not np.isfinite(emb).all():
        raise ValueError("nearest_neighbours: emb contains NaN or inf")
    if not 1 <= int(k) <= emb.shape[0] - 1:
        raise ValueError(f"nearest_neighbours: k must be in 1..{emb.shape[0] - 1} (N - 1), got {k}")
    ### BEGIN SOLUTION
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    unit = emb / np.where(norms > 0, norms, 1.0)  # a zero row stays zero: similarity 0 with everything
    sim = unit @ unit.T
    np.fill_diagonal(sim, -np.inf)  # leave the query out
    return np.argsort(-sim, axis=1, kind="stable")[:, :int(k)].astype(np.int64)
    ### END SOLUTION


def _check_ranking(neighbours, labels, k: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate the arguments shared by precision_at_k and map_at_k; returns them as int64 arrays."""
    neighbours = np.asarray(neighbours)
    labels = np.asarray(labels)
    if labels.ndim != 1 or neighbours.ndim != 2 or neighbours.shape[0] != labels.shape[0]:
        raise ValueError(f"{name}: neighbours must be (N, m) and labels (N,), "
                         f"got {neighbours.shape} and {labels.shape}")
    if not 1 <= int(k) <= neighbours.shape[1]:
        raise ValueError(f"{name}: k must be in 1..{neighbours.shape[1]} (the columns of neighbours), got {k}")
    neighbours, labels = neighbours.astype(np.int64), labels.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise ValueError(f"{name}: labels must be class indices >= 0")
    if neighbours.size and (neighbours.min() < 0 or neighbours.max() >= len(labels)):
        raise ValueError(f"{name}: neighbours holds indices outside 0..{len(labels) - 1}")
    return neighbours, labels


def precision_at_k(neighbours, labels, k: int = 10) -> float:
    """Mean precision at k of a retrieval: how many of the top k neighbours share the query's label.

    Args:
        neighbours: (N, m) int array, m >= k; row i is the ranked list of item i's neighbours, most
            similar first, without i itself (as returned by nearest_neighbours(emb, m); m may be larger
            than k, e.g. the full ranking with m = N - 1). Only the first k columns count.
        labels: (N,) int array, the label (genre) of each item.
        k: the cut-off, 1 <= k <= m.

    Returns:
        a Python float in [0, 1]:  (1 / N) * sum_i  #{r < k : labels[neighbours[i, r]] == labels[i]} / k.

    Raises ValueError (one line naming the argument) for mismatched shapes, k outside 1..m, or indices
    outside 0..N-1.
    """
    neighbours, labels = _check_ranking(neighbours, labels, k, "precision_at_k")
    ### BEGIN SOLUTION
    relevant = labels[neighbours[:, :int(k)]] == labels[:, None]  # (N, k)
    return float(relevant.mean(axis=1).mean())
    ### END SOLUTION


def map_at_k(neighbours, labels, k: int = 10) -> float:
    """Mean average precision at k (MAP@k) of a retrieval.

    Args: as in precision_at_k (only the first k columns of neighbours count).

    Returns:
        a Python float in [0, 1], the mean over the N queries of their average precision at k. For
        query i with rel_r = 1 when labels[neighbours[i, r - 1]] == labels[i] (ranks r = 1..k) and
        R_i = the number of items j != i with labels[j] == labels[i]::

            AP@k(i) = sum_{r=1..k} rel_r * precision@r(i) / min(k, R_i),
            precision@r(i) = (rel_1 + ... + rel_r) / r,

        and AP@k(i) = 0 when R_i = 0 (no other item shares its label; such a query still counts in
        the mean). The normaliser min(k, R_i) is the most relevant items the top k can hold, so a
        perfect ranking scores 1 even for a genre with fewer than k other clips.

    Raises ValueError as precision_at_k.
    Example: labels [0, 0, 0, 1], query 0 ranked [3, 1, 2] with k = 3: rel = [0, 1, 1], precision@2
    = 1/2, precision@3 = 2/3, R_0 = 2, AP@3 = (1/2 + 2/3) / min(3, 2) = 7/12.
    """
    neighbours, labels = _check_ranking(neighbours, labels, k, "map_at_k")
    ### BEGIN SOLUTION
    k = int(k)
    rel = (labels[neighbours[:, :k]] == labels[:, None]).astype(np.float64)  # (N, k)
    precision_at_r = np.cumsum(rel, axis=1) / np.arange(1, k + 1)            # (N, k)
    others = np.bincount(labels)[labels] - 1                                  # R_i, (N,)
    normaliser = np.minimum(k, others)
    ap = np.where(normaliser > 0, (rel * precision_at_r).sum(axis=1) / np.maximum(normaliser, 1), 0.0)
    return float(ap.mean())
    ### END SOLUTION
