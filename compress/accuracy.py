"""The validation score that guards INT8 (quantize_with_accuracy_control): labelled images through the compiled IR."""
from typing import Any, Iterable, List, Tuple

import cv2
import numpy as np

from edgematte.edge.card import ModelCard
from edgematte.edge.datasets import find_pairs, read_pair
from edgematte.edge.errors import InputError
from edgematte.edge.evaluate import alpha_of
from edgematte.edge.runtime import from_network_output, to_network_input

DEFAULT_VAL_LIMIT = 200
# Higher is better for NNCF; the drop is absolute, in the units of the score.
SCORE_NAME = {"saliency": "1 - MAE", "alpha": "1 - MAE", "trimap": "1 - MAE of fg + unknown/2"}

Item = Tuple[np.ndarray, np.ndarray]


def validation_items(card: ModelCard, folder: str, limit: int = DEFAULT_VAL_LIMIT) -> List[Item]:
    """(network input, ground-truth alpha at the network's output size) for up to `limit` pairs of a dataset."""
    if card.task not in SCORE_NAME:
        raise InputError("no validation score for task {!r}".format(card.task))
    pairs = find_pairs(folder)[:max(1, int(limit))]
    height, width = (int(v) for v in card.input_size)
    items = []  # type: List[Item]
    for pair in pairs:
        image, alpha = read_pair(pair)
        gt = cv2.resize(alpha, (width, height), interpolation=cv2.INTER_AREA)
        items.append((to_network_input(image, card), gt.astype(np.float32)))
    return items


def validation_score(compiled: Any, items: Iterable[Item], card: ModelCard) -> Tuple[float, List[float]]:
    """(mean score, per-item scores) with score = 1 - mean |foreground - alpha|, NNCF's validation_fn contract; the
    raw output goes through the runtime's own post-processing and `edgematte eval`'s foreground (alpha_of)."""
    scores = []  # type: List[float]
    output = compiled.outputs[0]
    for network_input, gt in items:
        fg = alpha_of(from_network_output(compiled([network_input])[output], card, gt.shape))
        scores.append(1.0 - float(np.abs(fg - gt).mean()))
    return float(np.mean(scores)) if scores else 0.0, scores
