"""Quality gate: the released weights on the shared validation split (held out by source).

Skips on a user's clone where ../shared is absent; runs (and must pass) in CI.
"""

from __future__ import annotations

import pytest
from conftest import DATASET, needs_shared

from detector_core.training.evaluate import evaluate

pytestmark = needs_shared()

MIN_VAL_AUC = 0.85
# The product's promise: few human images in the likely_ai band (see the model card).
MAX_HUMAN_LIKELY_AI = 0.02


@pytest.fixture(scope="module")
def val_report():
    report, _, _ = evaluate(data_dir=DATASET, split="val", progress=False)
    return report


def test_released_weights_reach_the_auc_gate_on_val(val_report):
    assert val_report["n_images"] > 500
    assert val_report["auc"] >= MIN_VAL_AUC, f"val AUC {val_report['auc']:.3f} < {MIN_VAL_AUC}"


def test_released_weights_rarely_flag_human_images_on_val(val_report):
    rate = val_report["overall"]["likely_ai_rate_on_human"]
    assert rate <= MAX_HUMAN_LIKELY_AI, f"{rate:.1%} of human val images in likely_ai"


def test_released_weights_are_calibrated_on_val(val_report):
    # Cross-fitted: calibration fitted on half of the val images, measured on the other half.
    assert val_report["ece_crossfitted"] < 0.10


def test_recorded_headline_figures_match_a_fresh_evaluation(val_report):
    import json

    from detector_core.weights import default_weights_path, load_weights

    recorded = json.loads(load_weights(default_weights_path()).metadata["val_report"])
    assert recorded["auc"] == pytest.approx(val_report["auc"], abs=1e-4)
