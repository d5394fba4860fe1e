"""Goal-setter PPO: a PPO policy whose action is a goal state, decoded into the env action by an
inverse-dynamics model (IDM) — frozen, trained jointly (a GCSL loop), or "V0".

The idea under test: instead of choosing actions, the policy chooses *where to be* a few steps
from now, g (one independent Gaussian per state dimension), and a goal-conditioned IDM
(s_t, g) → a_t turns that into the action. The env reward trains the goal setter with PPO
(``bench.algos.ppo``: same rollouts, GAE, clipped objective, value function, normalization);
only what the policy outputs and how it reaches the env differ.

Goal space and scale. The IDM is the GCSL IDM of ``bench.algos.gcsl_idm`` (an MLP on normalized
(s_t, s_{t+k}), tanh action). Goals live in the IDM's normalized state space: the policy output z
*is* the normalized goal, g = mean + std · z, with the dataset's per-dimension mean and std
(identity without a dataset). PPO's initial policy, N(0, 1) per dimension, therefore already
proposes goals spread over the dataset's states. Goals are not clipped to an action box (there is
none): before the IDM sees them they are clamped to ±``goal_clip`` (default 5) standard
deviations, the range the IDM was trained on; the PPO log-probability is that of the unclamped
sample, as PPO does for clipped actions.

Variants (registered configurations of this one class):

- ``gs_ppo`` (``idm_training="frozen"``): the IDM is pretrained offline on ``--dataset`` (GCSL
  relabelling, k uniform in 1..K, ``idm_pretrain_updates`` steps) before the first rollout, then
  frozen: no IDM parameter changes afterwards. PPO learns the goal distribution.
- ``gs_ppo_joint`` (``idm_training="joint"``): after every rollout the IDM takes
  ``idm_updates_per_iteration`` GCSL steps on a replay buffer of the goal setter's own transitions
  (``buffer_size`` per env, goals relabelled from states the same episode reached 1..K steps later,
  never across an episode's end). Pretrained on ``--dataset`` first when one is given (warm start).
- ``gs_ppo_v0`` (``emit_actions=True``, joint IDM): the policy's Gaussian covers (goal, action);
  the env executes the *action* part, so the PPO ratio and entropy cover only the action
  dimensions (the goal never reaches the env, its likelihood ratio would carry no reward signal).
  The closeness loss C = ‖IDM(s, g) − a‖² (a = the action PPO took, g = the goal mean) reaches:
    * the IDM's parameters, through ‖IDM(s, sg(g)) − sg(a)‖², its own optimizer step (added to
      its GCSL step on the replay buffer);
    * goal generation, through ``closeness_coef`` · ‖IDM_sg(s, g) − sg(a)‖² added to the PPO
      loss, with the IDM's parameters held fixed in that term: the goal-mean outputs of the
      actor and the hidden layers they share with the action means (one actor MLP emits both,
      as "PPO also emits actions" reads);
    * not the action means directly: a is detached everywhere and the action rows of the
      actor's output layer get no gradient from C — but the shared hidden layers do, so C also
      shapes the features the action means are computed from (a separate goal MLP would cut
      that link; not done, to keep one policy emitting both).
  Evaluated two ways: ``act=policy`` (the action head: what the env saw in training) and
  ``act=idm`` (the IDM decoding the goal head: does the goal setter + IDM pair act as well?).

The research notes' other conditions are settings of these variants (issue 29):

- **the IDM on raw states** ("set gcsl_idm into ppo_continous … perhaps normalizing is needed,
  normalizing not helping"): ``gs_ppo --set idm_normalize_states=false`` — the IDM is pretrained
  on and decodes raw (s, g); the policy still proposes goals in the dataset's standard deviations
  (g = mean + std · z), so only what the IDM reads changes;
- a **random fixed IDM** ("just try train with random fixed gcsl_idm"): ``gs_ppo --set
  idm_pretrain_updates=0`` — the IDM keeps the seed's initial weights;
- **the IDM in PPO's optimizer** ("try giving gcsl_idm parameters to the optimizer"):
  ``idm_in_optimizer=true`` adds them as a parameter group; PPO's loss never reaches them;
- **closeness only** (the notes' variant 1, before V0: "use ppo action, in idm train loop force
  actions closer by mse loss"): ``gs_ppo_v0 --set closeness_coef=0`` — the IDM is pulled toward
  PPO's actions, the goal head is not trained to match;
- **an IDM trained on PPO's data, then fixed** ("train idm with ppo data, then save it and fix
  it, then train ppo goal setter"): ``gs_ppo --set idm_from_run=RUN`` loads a finished goal-setter
  run's IDM (e.g. a ``gs_ppo_v0`` run's, trained on its PPO policy's rollouts) with the state
  scale it reads, and keeps it fixed; no dataset is needed then, and ``{seed}`` in RUN stands
  for the run's own seed (so that one sweep line pairs seed n with seed n's first run). RUN must
  have finished, and stay where it is until this run has (a resume loads it again first).
  "Don't force PPO and IDM close in pretraining": make that run with ``--set
  idm_closeness=false`` (its IDM learns by GCSL on the rollouts alone).

Reward: the env reward, unshaped (there is no shaping option yet).

A finished goal-setter run is also a goal source for any IDM (``--set goal_source=gs_ppo --set
goal_setter_run=RUN_DIR``, see ``bench.goals``): ``load_goal_setter`` returns its mean goals in
raw state units.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F

from bench import registry
from bench.algorithm import DEFAULT, Algorithm, Condition, check_condition
from bench.algos.ppo import PPO, PPOConfig
from bench.config import at_least, positive, positive_sizes
from bench.data.sampler import TaskSpec, Sampler
from bench.errors import UsageError
from bench.nn.idm import InverseDynamicsMLP
from bench.nn.layers import row_invariant_act
from bench.nn.optim import adamw
from bench.nn.vicreg import VICRegFields, VICRegHead, vicreg_weight
from bench.progress import progress_bar
from bench.registry import register


@dataclass
class GoalSetterPPOConfig(PPOConfig):
    # frozen: the IDM is pretrained on --dataset and fixed; joint: it keeps training (GCSL) on
    # the goal setter's own rollouts
    idm_training: Literal["frozen", "joint"] = "frozen"
    emit_actions: bool = False  # V0: the policy also emits the env action
    max_offset: int = 10  # K: the IDM is trained on goals 1..K steps ahead (as gcsl_idm)
    idm_hidden: tuple[int, ...] = (256, 256)  # the IDM's hidden layers
    idm_state_encoder: tuple[int, ...] = ()  # sizes of a shared state encoder in the IDM (VICReg)
    idm_lr: float = 3e-4  # the IDM's Adam learning rate
    idm_batch_size: int = 256  # goal pairs per IDM update
    idm_pretrain_updates: int = 20_000  # offline GCSL steps on --dataset before the first rollout
    idm_updates_per_iteration: int = 200  # joint: GCSL steps on the replay buffer per rollout
    buffer_size: int = 200_000  # joint: transitions kept per env
    goal_clip: float = 5.0  # |normalized goal| the IDM sees, in dataset standard deviations
    # False: the IDM reads raw states and goals (g = mean + std · z) instead of normalized ones,
    # as the notes' first goal setter did ("perhaps normalizing is needed")
    idm_normalize_states: bool = True
    closeness_coef: float = 1.0  # V0: weight of the closeness loss on the goal head
    idm_closeness: bool = True  # V0: the IDM's own step toward PPO's action (False: GCSL only)
    # A finished goal-setter run whose IDM (with its state scale) is loaded and frozen instead of
    # pretrained ("{seed}" in it: this run's seed): the notes' "train the IDM with PPO's data,
    # fix it, then train the goal setter"
    idm_from_run: str = ""
    # Also hand the IDM's parameters to PPO's optimizer (the notes' check; the IDM never gets a
    # gradient from PPO's loss, so this changes nothing)
    idm_in_optimizer: bool = False

    UNBOUNDED_OK: ClassVar[tuple[str, ...]] = PPOConfig.UNBOUNDED_OK + ("goal_clip",)
    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {**PPOConfig.BUDGETS["smoke"], "idm_pretrain_updates": 20,
                  "idm_updates_per_iteration": 5, "idm_batch_size": 32, "buffer_size": 2048},
        "quick": {**PPOConfig.BUDGETS["quick"], "idm_pretrain_updates": 5_000},
    }

    def checks(self) -> list[str]:
        out = (at_least(self, 1, "max_offset", "idm_batch_size", "buffer_size")
               + at_least(self, 0, "idm_pretrain_updates", "idm_updates_per_iteration",
                          "closeness_coef")
               + positive_sizes(self, "idm_hidden", "idm_state_encoder")
               + positive(self, "goal_clip"))
        if self.idm_from_run and self.idm_training != "frozen":
            out.append("idm_from_run loads an IDM to keep fixed: use it with gs_ppo "
                       "(idm_training=frozen), e.g. --algo gs_ppo --set idm_from_run=RUN_DIR")
        return out


@dataclass
class GoalSetterPPOVICRegConfig(GoalSetterPPOConfig, VICRegFields):
    def checks(self) -> list[str]:
        if self.vicreg_weight > 0 and not self.idm_state_encoder:
            return ["VICReg regularizes the IDM's state encoder: set idm_state_encoder (e.g. "
                    "--set idm_state_encoder=256)"]
        return []


@dataclass(frozen=True)
class Actor(Condition):
    """V0's evaluation settings: act with the policy's own action head, or decode its goal
    through the IDM."""

    which: Literal["policy", "idm"]

    @property
    def label(self) -> str:
        return f"act={self.which}"


class ReplayBuffer:
    """Per-env circular buffers of (s_t, a_t, s_{t+1}, episode id) for GCSL relabelling.

    Each env writes its own ring, so consecutive slots are consecutive steps of one env and a goal
    k steps ahead is the next state of the transition k-1 slots later, if that slot holds the same
    episode and has been written."""

    def __init__(self, num_envs: int, capacity: int, obs_dim: int, act_dim: int) -> None:
        self.capacity = capacity
        self.obs = np.zeros((num_envs, capacity, obs_dim), np.float32)
        self.next_obs = np.zeros((num_envs, capacity, obs_dim), np.float32)
        self.actions = np.zeros((num_envs, capacity, act_dim), np.float32)
        self.episode = np.full((num_envs, capacity), -1, np.int64)
        self.written = np.zeros(num_envs, np.int64)  # total transitions each env has written
        self.current_episode = np.arange(num_envs, dtype=np.int64)
        self.next_episode_id = num_envs

    def __len__(self) -> int:
        return int(np.minimum(self.written, self.capacity).sum())

    def add(self, env: int, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray,
            done: bool) -> None:
        slot = self.written[env] % self.capacity
        self.obs[env, slot], self.actions[env, slot], self.next_obs[env, slot] = obs, action, next_obs
        self.episode[env, slot] = self.current_episode[env]
        self.written[env] += 1
        if done:
            self.current_episode[env] = self.next_episode_id
            self.next_episode_id += 1

    def goal_pairs(self, batch_size: int, max_offset: int,
                   rng: np.random.Generator) -> dict[str, np.ndarray]:
        """(s_t, a_t, s_{t+k}), k uniform in 1..min(K, steps recorded after t in its episode)."""
        filled = np.minimum(self.written, self.capacity)
        env = rng.choice(len(filled), batch_size, p=filled / filled.sum())
        age = np.floor(rng.random(batch_size) * filled[env]).astype(np.int64)  # 0 = oldest
        first = self.written[env] - filled[env]  # absolute index of each ring's oldest slot
        start = first + age
        ahead = start[:, None] + np.arange(max_offset)[None, :]  # transitions t .. t+K-1
        same = (ahead < self.written[env][:, None]) & (
            self.episode[env[:, None], ahead % self.capacity]
            == self.episode[env, start % self.capacity][:, None])
        reach = np.cumprod(same, axis=1).sum(1)  # >= 1: transition t itself
        k = 1 + np.floor(rng.random(batch_size) * reach).astype(np.int64)
        slot, goal_slot = start % self.capacity, (start + k - 1) % self.capacity
        return {"observations": self.obs[env, slot], "actions": self.actions[env, slot],
                "goals": self.next_obs[env, goal_slot], "offsets": k}

    def state_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k).copy() if isinstance(getattr(self, k), np.ndarray)
                else getattr(self, k)
                for k in ("obs", "next_obs", "actions", "episode", "written", "current_episode",
                          "next_episode_id")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v.copy() if isinstance(v, np.ndarray) else v)


@register("gs_ppo", kind="online",
          description="goal-setter PPO: Gaussian goal states decoded by a frozen pretrained IDM")
@register("gs_ppo_joint", kind="online", defaults={"idm_training": "joint"},
          description="goal-setter PPO with the IDM trained jointly on its own rollouts (GCSL)")
@register("gs_ppo_v0", kind="online", defaults={"idm_training": "joint", "emit_actions": True},
          description="goal-setter PPO 'V0': PPO also emits actions, IDM and goals pulled together")
@register("gs_ppo_vicreg", kind="online", defaults={"idm_training": "joint"},
          config=GoalSetterPPOVICRegConfig,
          presets={"idm_state_encoder": (256,), "vicreg_weight": 0.1},
          description="goal-setter PPO, joint IDM whose state encoder gets temporal VICReg")
class GoalSetterPPO(PPO):
    Config = GoalSetterPPOConfig
    # Not PPO's: this actor emits goals, and acting needs the IDM as well, which a standalone
    # Gaussian-MLP policy file cannot hold (so snapshot_every is refused for these algorithms).
    export_policy = Algorithm.export_policy

    def __init__(self, config: GoalSetterPPOConfig, spec: TaskSpec, device: torch.device) -> None:
        super().__init__(config, spec, device)
        self.idm = InverseDynamicsMLP(spec.obs_dim, spec.act_dim, config.idm_hidden,
                                      config.idm_state_encoder).to(device)
        idm_params = list(self.idm.parameters())
        # Here VICReg regularizes the IDM's state encoder (PPO's actor is left alone).
        self.idm_vicreg: VICRegHead | None = None
        if vicreg_weight(config) > 0:
            self.idm_vicreg = VICRegHead(self.idm.representation_dim, config).to(device)
            idm_params += list(self.idm_vicreg.parameters())
        self.idm_optimizer = adamw(idm_params, config.idm_lr)
        if config.idm_in_optimizer:
            self.optimizer.add_param_group({"params": list(self.idm.parameters())})
        self.pretrained = bool(config.idm_from_run)  # a loaded IDM is not pretrained again
        self._vicreg_stats: dict[str, float] = {}
        self.dataset: Sampler | None = None
        self.idm_rng = np.random.default_rng(0)
        self.buffer: ReplayBuffer | None = None
        if config.idm_training == "frozen":
            self.idm.requires_grad_(False)
        else:
            self.buffer = ReplayBuffer(config.num_envs, config.buffer_size, spec.obs_dim,
                                       spec.act_dim)
            self.transition_hook = self._record

    @classmethod
    def dataset_use(cls, config: GoalSetterPPOConfig) -> str:
        pretrains = config.idm_training == "frozen" and not config.idm_from_run
        return "required" if pretrains else "optional"

    def attach_dataset(self, sampler: Sampler) -> None:
        self.dataset = sampler

    def setup(self, make_env, seed: int) -> None:
        super().setup(make_env, seed)
        self.idm_rng = np.random.default_rng([seed, 1])
        if self.config.idm_from_run:
            self._load_idm(self.config.idm_from_run.replace("{seed}", str(seed)))

    def _load_idm(self, run: str) -> None:
        loaded = load_idm(run)
        sizes = (tuple(self.config.idm_hidden), tuple(self.config.idm_state_encoder))
        if (loaded["idm_hidden"], loaded["idm_state_encoder"]) != sizes:
            raise UsageError(f"idm_from_run: its IDM has hidden layers {loaded['idm_hidden']} and "
                             f"state encoder {loaded['idm_state_encoder']}, this run's config "
                             f"{sizes[0]} and {sizes[1]}: set --set idm_hidden=... and "
                             "idm_state_encoder=... to match")
        if loaded["idm_normalize_states"] != self.config.idm_normalize_states:
            theirs = f"idm_normalize_states={str(loaded['idm_normalize_states']).lower()}"
            raise UsageError(f"idm_from_run: its IDM was trained with {theirs}; set --set "
                             f"{theirs} to read states as it does")
        self.idm.load_state_dict(loaded["idm"])
        # The loaded IDM reads states in its own run's units, and goals are proposed in them.
        self.obs_mean, self.obs_std = self.tensor(loaded["obs_mean"]), self.tensor(loaded["obs_std"])

    # -- what the policy emits ------------------------------------------------------------
    def policy_output_dim(self) -> int:
        return self.spec.obs_dim + (self.spec.act_dim if self.config.emit_actions else 0)

    def ratio_dims(self) -> slice:
        return slice(self.spec.obs_dim, None) if self.config.emit_actions else slice(None)

    def vicreg_on_actor(self) -> bool:
        return False

    def idm_states(self, states: torch.Tensor) -> torch.Tensor:
        """Raw states (observations or goals) in the units the IDM reads."""
        return self.normalize(states) if self.config.idm_normalize_states else states

    def decode(self, observations: torch.Tensor, goals: torch.Tensor) -> torch.Tensor:
        """IDM action in [-1, 1] for raw observations and normalized goals (clamped)."""
        z = goals.clamp(-self.config.goal_clip, self.config.goal_clip)
        if not self.config.idm_normalize_states:
            z = z * self.obs_std + self.obs_mean  # the same goal in raw units
        return self.idm(self.idm_states(observations), z)

    def to_env_action(self, policy_output: np.ndarray, obs: np.ndarray) -> np.ndarray:
        if self.config.emit_actions:
            action = policy_output[:, self.spec.obs_dim:]
        else:
            with torch.inference_mode():
                action = self.decode(self.tensor(obs), self.tensor(policy_output))
                action = self.env_actions(action)
        return np.clip(action, self.spec.action_low, self.spec.action_high)

    # -- the IDM --------------------------------------------------------------------------
    def _record(self, env: int, obs, action, reward, terminated, truncated, next_obs) -> None:
        self.buffer.add(env, obs, action, next_obs, bool(terminated or truncated))

    def _gcsl_step(self, pairs: dict[str, np.ndarray]) -> float:
        target = self.unit_actions(pairs["actions"])
        states = self.idm_states(self.tensor(pairs["observations"]))
        goals = self.idm_states(self.tensor(pairs["goals"]))
        mse = F.mse_loss(self.idm(states, goals), target)
        loss = mse
        if self.idm_vicreg is not None:
            # The relabelled pairs are temporal pairs: (s_t, s_{t+k}) of one episode.
            near = torch.as_tensor(pairs["offsets"] <= self.config.vicreg_max_offset)
            if int(near.sum()) >= 2:
                aux, self._vicreg_stats = self.idm_vicreg(self.idm.encode(states[near]),
                                                          self.idm.encode(goals[near]))
                loss = mse + self.config.vicreg_weight * aux
        self.idm_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.idm_optimizer.step()
        return mse.item()

    def _pretrain(self) -> dict[str, float]:
        """GCSL on the dataset before the first rollout (the frozen IDM; the joint warm start)."""
        self.pretrained = True
        c = self.config
        if self.dataset is None or c.idm_pretrain_updates <= 0:
            return {}
        self.idm.requires_grad_(True)
        losses = []
        with progress_bar(total=c.idm_pretrain_updates, desc="pretraining the IDM",
                          unit="upd") as bar:
            for _ in range(c.idm_pretrain_updates):
                losses.append(self._gcsl_step(self.dataset.goal_pairs(c.idm_batch_size,
                                                                      c.max_offset)))
                bar.update(1)
        if c.idm_training == "frozen":
            self.idm.requires_grad_(False)
        return {"idm/pretrain_loss_first": float(np.mean(losses[:10])),
                "idm/pretrain_loss_last": float(np.mean(losses[-100:]))}

    def train_iteration(self) -> dict[str, float]:
        metrics = {} if self.pretrained else self._pretrain()
        metrics.update(super().train_iteration())
        if self.config.idm_training == "joint" and len(self.buffer) > 0:
            losses = [self._gcsl_step(self.buffer.goal_pairs(
                self.config.idm_batch_size, self.config.max_offset, self.idm_rng))
                for _ in range(self.config.idm_updates_per_iteration)]
            metrics["idm/gcsl_loss"] = float(np.mean(losses)) if losses else float("nan")
            if self.idm_vicreg is not None and losses:
                metrics.update({f"idm/{k}": v for k, v in self._vicreg_stats.items()})
        return metrics

    def extra_losses(self, minibatch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        if not self.config.emit_actions:
            return super().extra_losses(minibatch)  # (nothing: VICReg is on the IDM here)
        d = self.spec.obs_dim
        raw = minibatch["raw_obs"]
        goal_mean = self.net.actor_mean(minibatch["obs"])[:, :d]
        # The action PPO took (clipped into the box as the env saw it), rescaled to [-1, 1].
        low, high = self.tensor(self.spec.action_low), self.tensor(self.spec.action_high)
        taken = self.unit_actions(minibatch["outputs"][:, d:].clamp(low, high)).detach()
        stats = {}
        if self.config.idm_training != "frozen" and self.config.idm_closeness:
            # The IDM toward PPO's action: its own optimizer step, goals detached ...
            idm_closeness = F.mse_loss(self.decode(raw, goal_mean.detach()), taken)
            self.idm_optimizer.zero_grad(set_to_none=True)
            idm_closeness.backward()
            self.idm_optimizer.step()
            self.idm_optimizer.zero_grad(set_to_none=True)
            stats["closeness/idm"] = idm_closeness.item()
        # ... and the goal head toward goals that the IDM, held fixed, decodes into that action.
        self.idm.requires_grad_(False)
        goal_closeness = F.mse_loss(self.decode(raw, goal_mean), taken)
        self.idm.requires_grad_(self.config.idm_training != "frozen")
        stats["closeness/goal"] = goal_closeness.item()
        return self.config.closeness_coef * goal_closeness, stats

    # -- acting ---------------------------------------------------------------------------
    def eval_conditions(self) -> list[Condition]:
        return [Actor("policy"), Actor("idm")] if self.config.emit_actions else [DEFAULT]

    def initial_state(self, num_envs: int, condition: Condition = DEFAULT) -> Condition:
        check_condition(condition, Actor)
        return condition

    @row_invariant_act
    def act(self, observations: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        o = torch.as_tensor(self._normalize_obs(observations), device=self.device)
        mean = self.net.actor_mean(o)
        if self.config.emit_actions and state != Actor("idm"):
            return self.to_env_action(mean.cpu().numpy(), observations), state
        goals = mean[:, :self.spec.obs_dim]
        action = self.env_actions(self.decode(self.tensor(observations), goals))
        return np.clip(action, self.spec.action_low, self.spec.action_high), state

    # -- persistence ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        # PPO's parts and state, plus the idm, idm_vicreg, idm_optimizer and buffer parts
        return {**super().state_dict(), "pretrained": self.pretrained,
                "idm_rng": self.idm_rng.bit_generator.state,
                "idm_obs_mean": self.obs_mean.cpu().numpy(),
                "idm_obs_std": self.obs_std.cpu().numpy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.pretrained = state["pretrained"]
        self.idm_rng.bit_generator.state = state["idm_rng"]
        if "idm_obs_mean" in state:  # (checkpoints before 2026-12-06 used the spec's)
            self.obs_mean = self.tensor(state["idm_obs_mean"])
            self.obs_std = self.tensor(state["idm_obs_std"])


GOAL_SETTER_ALGOS = ("gs_ppo", "gs_ppo_joint", "gs_ppo_v0")


def _goal_setter_checkpoint(run: str | Path, field: str) -> dict[str, Any]:
    path = Path(run)
    ckpt_path = path / "checkpoint.pt" if path.is_dir() else path
    if not ckpt_path.is_file():
        raise UsageError(f"{field}: no checkpoint at {ckpt_path}; point it at a finished "
                         "goal-setter run (e.g. results/hopper-expert/gs_ppo/quick/seed_0), made "
                         "with `bench run --algo gs_ppo --dataset hopper-expert`.")
    if not (ckpt_path.parent / "result.json").is_file():
        raise UsageError(f"{field}: {ckpt_path.parent} has not finished (no result.json): a "
                         "checkpoint of a run still training, or of one that stopped, is not its "
                         "trained goal setter; finish it first (bench run ... --resume).")
    saved = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    if saved.get("algo_name") not in GOAL_SETTER_ALGOS:
        raise UsageError(f"{field}: {ckpt_path} is a {saved.get('algo_name')} run, not "
                         f"one of {', '.join(GOAL_SETTER_ALGOS)}.")
    if saved.get("idm_only") and field != "idm_from_run":
        raise UsageError(f"{field}: {ckpt_path} holds only that run's IDM (kept with a report's "
                         "records for idm_from_run); run it again to get its goal setter.")
    return saved


def idm_only(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """What ``load_idm`` reads of a goal-setter checkpoint (its IDM, sizes and state scale,
    ≈ 0.3 MB) without the policy, optimizers and replay buffer (≈ 20 MB with a joint IDM's
    200k-step buffer): what scripts/save_records.sh keeps of a run an ``idm_from_run`` names."""
    state = checkpoint["algo"]
    return {"algo_name": checkpoint["algo_name"], "spec": checkpoint["spec"],
            "config": checkpoint["config"], "step": checkpoint.get("step"), "idm_only": True,
            "algo": {k: state[k] for k in ("idm", "idm_obs_mean", "idm_obs_std") if k in state}}


def load_idm(run: str | Path) -> dict[str, Any]:
    """A finished goal-setter run's IDM: its weights, sizes and the state scale it reads."""
    saved = _goal_setter_checkpoint(run, "idm_from_run")
    spec = TaskSpec.from_dict(saved["spec"])
    state = saved["algo"]
    return {"idm": state["idm"], "idm_hidden": tuple(saved["config"]["idm_hidden"]),
            "idm_state_encoder": tuple(saved["config"]["idm_state_encoder"]),
            "idm_normalize_states": saved["config"].get("idm_normalize_states", True),
            "obs_mean": state.get("idm_obs_mean", spec.obs_mean),
            "obs_std": state.get("idm_obs_std", spec.obs_std)}


def load_goal_setter(run: str | Path) -> Callable[[np.ndarray], np.ndarray]:
    """Goals (raw state units) that a finished goal-setter run proposes for raw observations:
    its policy's mean goal, clamped as its IDM saw it, mapped back through the goal scale."""
    from bench.config import config_from_dict

    saved = _goal_setter_checkpoint(run, "goal_setter_run")
    spec = TaskSpec.from_dict(saved["spec"])
    config_cls = registry.get(saved["algo_name"]).config_cls
    # Its IDM is in the checkpoint; the run it may have been loaded from need not exist now.
    config = config_from_dict(config_cls, {**saved["config"], "idm_from_run": ""})
    algo = GoalSetterPPO(config, spec, torch.device("cpu"))
    algo.load_state_dict({**saved["algo"], "envs": None})
    clip = algo.config.goal_clip

    @torch.inference_mode()
    def goals(observations: np.ndarray) -> np.ndarray:
        o = torch.as_tensor(algo._normalize_obs(np.asarray(observations, np.float32)))
        z = algo.net.actor_mean(o)[:, :spec.obs_dim].clamp(-clip, clip).numpy()
        return (z * algo.obs_std.numpy() + algo.obs_mean.numpy()).astype(np.float32)

    goals.obs_dim = spec.obs_dim  # type: ignore[attr-defined]
    return goals
