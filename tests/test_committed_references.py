"""The reference policies committed under datasets/ are intact and act sensibly."""
import json
from pathlib import Path

import numpy as np

from bench.policies import GaussianMLPPolicy, file_sha256

HOPPER = Path(__file__).resolve().parents[1] / "datasets" / "hopper"


def test_hopper_reference_policies_match_their_card():
    card = json.loads((HOPPER / "reference.json").read_text())
    assert card["env_id"] == "Hopper-v5" and card["episodes"] == 100
    for which in ("expert", "medium"):
        entry = card[which]
        assert file_sha256(HOPPER / entry["file"]) == entry["sha256"]
        policy = GaussianMLPPolicy.load(HOPPER / entry["file"])
        actions = policy(np.zeros((5, 11)))
        assert actions.shape == (5, 3) and np.all(np.abs(actions) <= 1)
    # The D4RL recipe: medium is an earlier snapshot at about a third of the expert's return.
    assert card["medium"]["env_steps"] < card["expert"]["env_steps"]
    ratio = card["medium"]["mean_return"] / card["expert"]["mean_return"]
    assert 0.2 < ratio < 0.5
    assert card["random"]["mean_return"] < card["medium"]["mean_return"]
