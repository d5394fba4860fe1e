import numpy as np
import pytest

from bench.data.sampler import Sampler
from conftest import make_flat


def test_flat_bookkeeping():
    flat = make_flat([3, 1, 4])
    assert flat.num_transitions == 8 and flat.num_episodes == 3
    np.testing.assert_array_equal(flat.timesteps, [0, 1, 2, 0, 0, 1, 2, 3])
    # Returns-to-go: rewards are e+1 per step inside episode e.
    np.testing.assert_allclose(flat.returns_to_go, [3, 2, 1, 2, 12, 9, 6, 3])
    np.testing.assert_allclose(flat.episode_returns, [3, 2, 12])
    # The state observation of transition i is (episode, step).
    s = flat.state_observations()
    np.testing.assert_array_equal(s[:, 0], flat.episode_of)
    np.testing.assert_array_equal(s[:, 1], flat.timesteps)


def test_transitions_next_observation_is_same_episode_next_step():
    flat = make_flat([3, 1, 4])
    batch = Sampler(flat, seed=0).transitions(500)
    np.testing.assert_array_equal(batch["observations"][:, 0], batch["next_observations"][:, 0])
    np.testing.assert_array_equal(batch["observations"][:, 1] + 1, batch["next_observations"][:, 1])


@pytest.mark.parametrize("context", [1, 3, 6])
def test_windows_pad_on_the_left_at_episode_starts(context):
    flat = make_flat([3, 1, 4, 10])
    batch = Sampler(flat, seed=1).windows(2000, context)
    states, mask = batch["states"], batch["mask"]
    assert states.shape == (2000, context, 2) and mask.shape == (2000, context)
    assert mask[:, -1].all(), "the last step of a window is always real"
    # Masks are a run of False followed by a run of True (left padding only).
    assert (np.diff(mask.astype(int), axis=1) >= 0).all()
    for b in range(200):
        m = mask[b]
        real = states[b][m]
        assert (real[:, 0] == real[0, 0]).all(), "a window never crosses an episode boundary"
        np.testing.assert_array_equal(real[:, 1], np.arange(real[0, 1], real[0, 1] + len(real)))
        np.testing.assert_array_equal(batch["timesteps"][b][m], real[:, 1])
        # Padding exists exactly when the window would reach before the episode start.
        n_pad = (~m).sum()
        assert n_pad == max(0, context - 1 - int(real[-1, 1]))
        assert (states[b][~m] == 0).all() and (batch["returns_to_go"][b][~m] == 0).all()
        # The return-to-go matches the episode's rewards: (e+1) * steps left.
        e, t = int(real[-1, 0]), int(real[-1, 1])
        assert batch["returns_to_go"][b][-1] == (e + 1) * ([3, 1, 4, 10][e] - t)
    # The state after the last step: same episode, one step on; an episode's final observation
    # s_T (step == its length) is among them.
    after = batch["next_state"]
    np.testing.assert_array_equal(after[:, 0], states[:, -1, 0])
    np.testing.assert_array_equal(after[:, 1], states[:, -1, 1] + 1)
    assert set(map(tuple, after[after[:, 1] == np.array([3, 1, 4, 10])[after[:, 0].astype(int)]]
                   .astype(int).tolist())) == {(0, 3), (1, 1), (2, 4), (3, 10)}


def test_goal_pairs_stay_inside_the_episode_and_k_in_range():
    lengths = [3, 1, 4, 10]
    flat = make_flat(lengths)
    K = 5
    batch = Sampler(flat, seed=2).goal_pairs(5000, K)
    k = batch["offsets"]
    assert k.min() >= 1 and k.max() <= K
    np.testing.assert_array_equal(batch["observations"][:, 0], batch["goals"][:, 0])
    np.testing.assert_array_equal(batch["goals"][:, 1] - batch["observations"][:, 1], k)
    ep = batch["observations"][:, 0].astype(int)
    assert (batch["goals"][:, 1] <= np.array(lengths)[ep]).all()
    # Every allowed k shows up for a long episode (uniform in 1..K).
    long = ep == 3
    assert set(k[long & (batch["observations"][:, 1] == 0)]) == set(range(1, K + 1))


def test_sampler_resumes_its_random_stream():
    flat = make_flat([5, 7])
    a = Sampler(flat, seed=3)
    a.transitions(4)
    state = a.state_dict()
    first = a.windows(8, 3)["states"]
    b = Sampler(flat, seed=99)
    b.load_state_dict(state)
    np.testing.assert_array_equal(b.windows(8, 3)["states"], first)
