"""d3rlpy 2.8.1's TD3PlusBC, IQL and CQL built with bench's hyper-parameters, and bench's
transitions as a d3rlpy dataset. Runs in ``.venv-d3rlpy`` only (``measure.py`` and ``train.py``
beside it import it); the project's venv never imports d3rlpy.

``build(algo, config, ...)`` takes one of bench's resolved configs as a dict (what
``bench.config.config_to_json`` writes: every field of ``TD3BCConfig``, ``IQLConfig`` or
``CQLConfig``) and returns the d3rlpy algorithm with the same settings. Every field of bench's
config is mapped to d3rlpy's, or must hold the one value d3rlpy can express, or is the run loop's
bookkeeping; a field not listed here is an error, so that a hyper-parameter added to bench's
algorithm cannot silently stay at d3rlpy's default.

Both sides normalize observations with the same numbers: bench's mean and std of the training
transitions' observations (std + 1e-6), given to d3rlpy's ``StandardObservationScaler`` with
``eps=0``; both scale rewards, where bench's config does, by the same span of episode returns
(given to ``ReturnBasedRewardScaler``; ``data_stats`` computes all of them as
``bench.data.Sampler.spec`` does). Actions are learned in [-1, 1] (a ``MinMaxActionScaler`` to
the env's box when it is not [-1, 1] already), with Adam without weight decay (bench's fused
AdamW at weight decay 0 is Adam). What d3rlpy 2.8.1 does
differently, with no setting to change it, is in ``DIFFERENCES``.

``mdp_dataset(arrays)`` turns D4RL-style flat arrays (``bench.d4rl.qlearning_dataset``'s keys)
into d3rlpy episodes that keep every transition bench trains on: an episode that ended by a time
limit gets its final observation as one extra row (zero action and reward, never itself a
transition), so its last step has its true next observation, as in bench's sampler, where d3rlpy
built from flat arrays would drop that step, as d4rl does. An episode that terminated keeps its
steps; d3rlpy gives its last step a zero next observation, whose value the target multiplies by
zero (CQL's penalty still scores π's actions at it, one transition per episode).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

ALGOS = ("td3_bc", "iql", "cql")

# Fields of every offline config that only the run loop reads (num_updates is fit's n_steps).
# How bench runs, not what it computes (compile_losses: the same losses, compiled by torch.compile).
RUN_LOOP_FIELDS = {"num_updates", "log_every", "checkpoint_every", "eval_every", "snapshot_every",
                   "compile_losses"}

# bench's IQL constants that are not config fields (bench/algos/iql.py).
IQL_MAX_WEIGHT = 100.0  # EXP_ADV_MAX: exp(β·A) is clipped here
IQL_REWARD_SCALE_STEPS = 1000.0  # REWARD_SCALE_STEPS: rewards × 1000 / (max − min return)

DIFFERENCES = {
    "td3_bc": [
        "d3rlpy updates the actor at critic updates 0, 2, 4, ...; bench (as CORL) at 1, 3, 5, ...",
    ],
    "iql": [
        ("actor log-std: d3rlpy squashes a free parameter into [-5, 2] with a sigmoid (it starts "
         "at -1.5); bench clamps a free parameter to [-20, 2] (it starts at 0)"),
        ("Q loss: d3rlpy sums the two critics' MSEs, bench (as CORL) averages them (twice the "
         "gradient in d3rlpy; Adam's steps barely depend on it)"),
        "V and the Q-networks share one Adam in d3rlpy (same learning rate: the same steps)",
        ("the actor's weights exp(β·A) use V after this update's V step in d3rlpy, before it in "
         "bench"),
    ],
    "cql": [
        ("TD target: d3rlpy's (non-soft) backup takes π's mean action at s'; bench (as CORL) one "
         "sample of π(·|s')"),
        ("initialization: d3rlpy uses PyTorch's defaults; bench (as CORL) orthogonal critics with "
         "a 1e-2 output layer and an actor output layer at Xavier gain 1e-2"),
        ("actor log-std: d3rlpy a linear head clamped to [-20, 2]; bench (as CORL) a learned "
         "affine map of the head, clamped to [-20, 2]"),
        ("entropy temperature: d3rlpy's loss is -exp(log α)·(log π - A), bench's (as CORL) "
         "-log α·(log π - A): the same fixed point, other step sizes"),
        ("a terminal transition's next observation is zeros in d3rlpy (scored by the penalty's "
         "π(·|s') actions; one transition per terminated episode)"),
    ],
}


class MirrorError(ValueError):
    """bench's config holds a field or value that d3rlpy 2.8.1 cannot mirror."""


def _fields(algo: str, config: dict[str, Any], mapped: set[str]) -> None:
    unknown = sorted(set(config) - mapped - RUN_LOOP_FIELDS)
    if unknown:
        raise MirrorError(f"bench's {algo} config has fields the d3rlpy mirror does not map: "
                          f"{', '.join(unknown)}; map them in benchmarks/d3rlpy_offline/mirror.py")


def _require(algo: str, config: dict[str, Any], **values: Any) -> None:
    wrong = [f"{k}={config[k]!r} (d3rlpy can only do {v!r})"
             for k, v in values.items() if k in config and config[k] != v]
    if wrong:
        raise MirrorError(f"d3rlpy 2.8.1's {algo} has no counterpart of " + "; ".join(wrong))


def data_stats(arrays: dict[str, np.ndarray], action_low: np.ndarray,
               action_high: np.ndarray, max_episode_steps: int) -> dict[str, Any]:
    """What both sides derive from the data, computed as bench does: the observations' mean and
    std (+ 1e-6) over the transitions (float64, then float32; ``Sampler.spec``), the best and
    worst episode return (``FlatEpisodes.episode_returns``), the env's action box and episode
    length."""
    obs = np.asarray(arrays["observations"])
    rewards = np.asarray(arrays["rewards"], np.float64).reshape(-1)
    ends = (np.asarray(arrays["terminals"]).reshape(-1).astype(bool)
            | np.asarray(arrays["timeouts"]).reshape(-1).astype(bool))
    ends[-1] = True
    csum = np.concatenate([[0.0], np.cumsum(rewards)])
    bounds = np.concatenate([[0], np.flatnonzero(ends) + 1])
    returns = csum[bounds[1:]] - csum[bounds[:-1]]
    return {"obs_mean": obs.mean(0, dtype=np.float64).astype(np.float32),
            "obs_std": (obs.std(0, dtype=np.float64) + 1e-6).astype(np.float32),
            "return_min": float(returns.min()), "return_max": float(returns.max()),
            "action_low": np.asarray(action_low, np.float32),
            "action_high": np.asarray(action_high, np.float32),
            "max_episode_steps": int(max_episode_steps)}


def _scalers(stats: dict[str, Any]) -> dict[str, Any]:
    import d3rlpy

    scalers: dict[str, Any] = {"observation_scaler": d3rlpy.preprocessing.StandardObservationScaler(
        mean=stats["obs_mean"], std=stats["obs_std"], eps=0.0)}  # bench's std has its 1e-6
    low, high = stats["action_low"], stats["action_high"]
    if not (np.all(low == -1) and np.all(high == 1)):
        scalers["action_scaler"] = d3rlpy.preprocessing.MinMaxActionScaler(minimum=low,
                                                                            maximum=high)
    return scalers


def _return_scaler(stats: dict[str, Any], multiplier: float):
    """Rewards × multiplier / (max − min episode return), bench's reward normalization."""
    import d3rlpy

    return d3rlpy.preprocessing.ReturnBasedRewardScaler(
        return_max=stats["return_max"], return_min=stats["return_min"], multiplier=multiplier)


def build_config(algo: str, config: dict[str, Any], stats: dict[str, Any]):
    """d3rlpy's config for bench's ``algo`` with bench's ``config`` (a dict of its fields) and
    the data's ``stats`` (``data_stats``)."""
    import d3rlpy

    c = config
    mlp = d3rlpy.models.VectorEncoderFactory
    adam = d3rlpy.optimizers.AdamFactory
    common = dict(batch_size=int(c["batch_size"]), gamma=float(c["gamma"]), tau=float(c["tau"]),
                  n_critics=2, compile_graph=False, **_scalers(stats))
    if algo == "td3_bc":
        _fields(algo, c, {"batch_size", "lr", "hidden", "gamma", "tau", "policy_noise",
                          "noise_clip", "policy_every", "alpha"})
        return d3rlpy.algos.TD3PlusBCConfig(
            actor_learning_rate=float(c["lr"]), critic_learning_rate=float(c["lr"]),
            actor_optim_factory=adam(), critic_optim_factory=adam(),
            actor_encoder_factory=mlp(list(c["hidden"])),
            critic_encoder_factory=mlp(list(c["hidden"])),
            target_smoothing_sigma=float(c["policy_noise"]),
            target_smoothing_clip=float(c["noise_clip"]),
            update_actor_interval=int(c["policy_every"]), alpha=float(c["alpha"]), **common)
    if algo == "iql":
        _fields(algo, c, {"batch_size", "lr", "hidden", "gamma", "tau", "expectile", "beta",
                          "deterministic_actor", "normalize_reward"})
        _require(algo, c, deterministic_actor=False)
        scaler = ({"reward_scaler": _return_scaler(stats, IQL_REWARD_SCALE_STEPS)}
                  if c["normalize_reward"] else {})
        return d3rlpy.algos.IQLConfig(
            actor_learning_rate=float(c["lr"]), critic_learning_rate=float(c["lr"]),
            # The actor's learning rate decays to 0 on a cosine over the run, as bench's.
            actor_optim_factory=adam(lr_scheduler_factory=d3rlpy.optimizers.
                                     CosineAnnealingLRFactory(T_max=int(c["num_updates"]))),
            critic_optim_factory=adam(),
            actor_encoder_factory=mlp(list(c["hidden"])),
            critic_encoder_factory=mlp(list(c["hidden"])),
            value_encoder_factory=mlp(list(c["hidden"])),
            expectile=float(c["expectile"]), weight_temp=float(c["beta"]),
            max_weight=IQL_MAX_WEIGHT, **scaler, **common)
    if algo == "cql":
        _fields(algo, c, {
            "batch_size", "policy_lr", "qf_lr", "gamma", "tau", "target_update_period",
            "actor_hidden", "q_hidden", "orthogonal_init", "automatic_entropy_tuning",
            "alpha_multiplier", "backup_entropy", "bc_steps", "cql_n_actions",
            "cql_importance_sample", "cql_alpha", "cql_temp", "cql_lagrange",
            "cql_target_action_gap", "cql_max_target_backup", "cql_clip_diff_min",
            "cql_clip_diff_max", "normalize_reward", "reward_scale", "reward_bias"})
        _require(algo, c, target_update_period=1, bc_steps=0, cql_importance_sample=True,
                 cql_temp=1.0, cql_clip_diff_min=None, cql_clip_diff_max=None, reward_scale=1.0,
                 reward_bias=0.0)
        if c["automatic_entropy_tuning"]:
            _require(algo, c, alpha_multiplier=1.0)  # d3rlpy's α is exp(log α) alone
        if c["backup_entropy"] and c["cql_max_target_backup"]:
            raise MirrorError("d3rlpy 2.8.1's CQL cannot combine backup_entropy (soft_q_backup) "
                              "with cql_max_target_backup (max_q_backup)")
        scaler = ({"reward_scaler": _return_scaler(stats, float(stats["max_episode_steps"]))}
                  if c["normalize_reward"] else {})
        lagrange = bool(c["cql_lagrange"])
        return d3rlpy.algos.CQLConfig(
            actor_learning_rate=float(c["policy_lr"]), critic_learning_rate=float(c["qf_lr"]),
            # SAC's temperature: learned with the policy's rate, or fixed at alpha_multiplier.
            temp_learning_rate=float(c["policy_lr"]) if c["automatic_entropy_tuning"] else 0.0,
            initial_temperature=float(c["alpha_multiplier"]),
            # The penalty's multiplier α': learned (starting at e, as bench's) with the Q
            # rate under cql_lagrange, else fixed at 1 so that the weight is cql_alpha alone.
            alpha_learning_rate=float(c["qf_lr"]) if lagrange else 0.0,
            initial_alpha=math.e if lagrange else 1.0,
            alpha_threshold=float(c["cql_target_action_gap"]),
            conservative_weight=float(c["cql_alpha"]),
            n_action_samples=int(c["cql_n_actions"]),
            soft_q_backup=bool(c["backup_entropy"]),
            max_q_backup=bool(c["cql_max_target_backup"]),
            actor_optim_factory=adam(), critic_optim_factory=adam(), temp_optim_factory=adam(),
            alpha_optim_factory=adam(),
            actor_encoder_factory=mlp(list(c["actor_hidden"])),
            critic_encoder_factory=mlp(list(c["q_hidden"])), **scaler, **common)
    raise MirrorError(f"no d3rlpy mirror of {algo!r}; known: {', '.join(ALGOS)}")


def mdp_dataset(arrays: dict[str, np.ndarray]):
    """A d3rlpy ``MDPDataset`` holding every transition of D4RL-style flat arrays
    (observations, next_observations, actions, rewards, terminals, timeouts; one row per step):
    a time-limited episode's final observation is appended as a row of its own (see the module
    docstring). The last row ends an episode even if neither flag says so."""
    import d3rlpy

    obs = np.asarray(arrays["observations"], np.float32)
    next_obs = np.asarray(arrays["next_observations"], np.float32)
    actions = np.asarray(arrays["actions"], np.float32)
    rewards = np.asarray(arrays["rewards"], np.float32).reshape(-1)
    terminal = np.asarray(arrays["terminals"]).reshape(-1).astype(bool)
    timeout = np.asarray(arrays["timeouts"]).reshape(-1).astype(bool) & ~terminal
    timeout[-1] |= not terminal[-1]
    n, extra = len(actions), int(timeout.sum())
    # Row of step i: i plus the final-observation rows inserted before it.
    row = np.arange(n) + np.concatenate([[0], np.cumsum(timeout)[:-1]])
    final = row[timeout] + 1  # the inserted rows
    out_obs = np.zeros((n + extra, obs.shape[1]), np.float32)
    out_obs[row], out_obs[final] = obs, next_obs[timeout]
    out_act = np.zeros((n + extra, actions.shape[1]), np.float32)
    out_act[row] = actions
    out_rew = np.zeros((n + extra, 1), np.float32)
    out_rew[row, 0] = rewards
    out_term = np.zeros(n + extra, np.float32)
    out_term[row[terminal]] = 1.0
    out_timeout = np.zeros(n + extra, np.float32)
    out_timeout[final] = 1.0
    return d3rlpy.dataset.MDPDataset(
        observations=out_obs, actions=out_act, rewards=out_rew, terminals=out_term,
        timeouts=out_timeout, action_space=d3rlpy.ActionSpace.CONTINUOUS,
        action_size=actions.shape[1])


def quiet_d3rlpy() -> None:
    """d3rlpy logs through structlog to stdout, which carries these scripts' JSON lines."""
    import logging

    import structlog

    logging.disable(logging.CRITICAL)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))


def prepare(algo_obj, dataset) -> None:
    """What the start of d3rlpy's ``fit`` does before its loop, without its logger: fit the
    scalers not given already (none, with ``build_config``'s) and build the networks and
    optimizers."""
    from d3rlpy.algos.utility import build_scalers_with_transition_picker

    build_scalers_with_transition_picker(algo_obj, dataset)
    shape = dataset.sample_transition().observation_signature.shape[0]
    algo_obj.create_impl(shape, dataset.dataset_info.action_size)
