"""Questions asked of attention weights and scores, as pure functions over arrays."""

import numpy as np

from attncli.attention import softmax

__all__ = ["softmax_parts", "strongest_keys"]


def strongest_keys(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query row of `weights` [..., T, T], the key it attends to most and that weight.

    Returns (keys, weights), both [..., T]; a tie goes to the earliest key.
    """
    keys = np.argmax(weights, axis=-1)  # [..., T]
    return keys, np.take_along_axis(weights, keys[..., None], axis=-1)[..., 0]


def softmax_parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The steps of softmax over a vector `x` [n], for showing: (x - max, exp of that, probabilities).

    The probabilities are `softmax(x)` itself, so what is shown is what the model computes.
    """
    shifted = x - x.max()  # [n]
    return shifted, np.exp(shifted), softmax(x)
