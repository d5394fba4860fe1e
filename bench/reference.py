"""Reference policies: pick them from a training run's snapshots, record them, load them.

``python -m bench.reference pick RUN_DIR --env Hopper-v5 --out assets/hopper`` evaluates every
snapshot of a PPO or SAC run (``--set snapshot_every=N``), picks the *expert* (the best snapshot) and the
*medium* policy (a snapshot before it whose return is within 25% of a third of the expert's, the
D4RL recipe; the closest of up to 5 candidates otherwise), measures both and the uniform random policy over 100 episodes, and writes
``expert.pt``, ``medium.pt`` and ``reference.json`` (files, sha256, returns, how they were made).

Returns are measured with the policies acting *stochastically*, as they do when making datasets;
``ref_max`` of the datasets is the expert's mean return measured this way.
"""
from __future__ import annotations

import argparse
import functools
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from bench import registry
from bench.config import current_names
from bench.making.generate import UniformRandomPolicy
from bench.making.replay import save_action_record
from bench.errors import DatasetError
from bench.evaluate import PolicyAgent, evaluate
from bench.io import atomic_write_json
from bench.data.cards import load_card, reference_dir
from bench.policies import GaussianMLPPolicy, TanhGaussianMLPPolicy, file_sha256, load_policy

REFERENCE_EPISODES = 100
SCREEN_EPISODES = 10
MEDIUM_CANDIDATES = 5
# Reference measurements use their own seed range (datasets use 0.., evaluation 10**9..).
REFERENCE_SEED = 2_000_000_000


def load_reference_policy(family: str, which: str, *, seed: int
                          ) -> tuple[GaussianMLPPolicy | TanhGaussianMLPPolicy, dict]:
    """The stochastic reference policy ``which`` of ``family``, after checking its sha256."""
    card = load_card(family)
    entry = card[which]
    path = reference_dir() / family / entry["file"]
    actual = file_sha256(path)
    if actual != entry["sha256"]:
        raise DatasetError(f"reference policy {path} does not match its recorded sha256 "
                           f"({actual[:16]}… vs {entry['sha256'][:16]}…); restore it from git.")
    return load_policy(path, deterministic=False, seed=seed), card


def _returns(policy, env_id: str, episodes: int, seed: int) -> np.ndarray:
    make = functools.partial(gym.make, env_id)
    return evaluate(PolicyAgent(policy), make, episodes=episodes, seed=seed,
                    desc="measuring").returns


def pick(run_dir: Path, env_id: str, out: Path, log=print) -> dict[str, Any]:
    snapshots = sorted((run_dir / "snapshots").glob("step_*.pt"))
    if not snapshots:
        raise DatasetError(f"{run_dir} has no snapshots/; train with --set snapshot_every=N.")
    screened = []
    for path in snapshots:
        policy = load_policy(path, deterministic=False, seed=0)
        mean = float(_returns(policy, env_id, SCREEN_EPISODES, REFERENCE_SEED).mean())
        screened.append((path, mean))
        log(f"{path.name}: {mean:.0f}")
    best = max(range(len(screened)), key=lambda i: screened[i][1])
    if best == 0:  # the medium policy is an earlier snapshot than the expert: there is none
        raise DatasetError(f"the first snapshot of {run_dir} ({snapshots[0].name}) screens best, so "
                           "no earlier snapshot can be the medium policy; train longer, or "
                           "snapshot more often (--set snapshot_every=N).")
    expert_returns = _returns(load_policy(screened[best][0], deterministic=False, seed=0),
                              env_id, REFERENCE_EPISODES, REFERENCE_SEED)
    target = float(expert_returns.mean()) / 3
    # Early PPO policies vary a lot between episodes, so 10-episode screens are rough: measure the
    # candidates closest to the target properly and keep the first within 25% of it.
    candidates = sorted(range(best), key=lambda i: abs(screened[i][1] - target))[:MEDIUM_CANDIDATES]
    measured: dict[int, np.ndarray] = {best: expert_returns}
    medium = best
    for i in candidates:
        measured[i] = _returns(load_policy(screened[i][0], deterministic=False, seed=0),
                               env_id, REFERENCE_EPISODES, REFERENCE_SEED)
        log(f"medium candidate {screened[i][0].name}: {measured[i].mean():.0f}")
        if medium == best or abs(measured[i].mean() - target) < abs(measured[medium].mean() - target):
            medium = i
        if abs(measured[i].mean() - target) <= 0.25 * target:
            break
    env = gym.make(env_id)
    rnd = _returns(UniformRandomPolicy(env.action_space.low, env.action_space.high, seed=0), env_id,
                   REFERENCE_EPISODES, REFERENCE_SEED)
    env.close()
    from bench.data.catalog import reference_problem

    # The card's random and expert returns normalize every score of the family: refuse a pair
    # that cannot (an expert no better than random) before anything is written.
    problem = reference_problem(float(rnd.mean()), float(expert_returns.mean()))
    if problem:
        raise DatasetError(f"the reference returns of {run_dir} (random policy and its best "
                           f"snapshot as expert) {problem}; train longer, so that the expert "
                           "beats the random policy, and pick again. Nothing was written.")
    out.mkdir(parents=True, exist_ok=True)
    card: dict[str, Any] = {"env_id": env_id, "episodes": REFERENCE_EPISODES,
                            "seeds": f"{REFERENCE_SEED} + episode index",
                            "acting": "stochastic (Gaussian samples, as when making datasets)",
                            "source_run": str(run_dir),
                            "screening": [{"file": p.name, "mean_return_10": m} for p, m in screened]}
    config = json.loads((run_dir / "config.json").read_text())
    threads = json.loads((run_dir / "env.json").read_text()).get("torch_threads")
    # Everything needed to replay the training (the medium-replay dataset is its rollouts).
    card["training"] = {"algo": config["algo"], "env_id": env_id, "seed": config["seed"],
                        "config": config["config"], "torch_threads": threads}
    if config["algo"] == "sac":
        card["acting"] = "stochastic (tanh-squashed Gaussian samples, as when making datasets)"
    for which, index in (("expert", best), ("medium", medium)):
        src = screened[index][0]
        dst = out / f"{which}.pt"
        shutil.copyfile(src, dst)
        returns = measured[index]
        card[which] = {"file": dst.name, "sha256": file_sha256(dst), "snapshot": src.name,
                       "env_steps": int(src.stem.split("_")[1]),
                       "mean_return": float(returns.mean()), "std_return": float(returns.std()),
                       "train_command": " ".join(config.get("command", [])),
                       "train_seed": config.get("seed"), "train_overrides": config.get("overrides")}
        log(f"{which}: {src.name}, return {returns.mean():.1f} ± {returns.std():.1f}")
    card["random"] = {"mean_return": float(rnd.mean()), "std_return": float(rnd.std())}
    if config["algo"] == "sac":  # medium-replay replays the training's recorded actions
        try:
            card["medium_replay"] = save_action_record(
                run_dir / "checkpoint.pt", card["medium"]["env_steps"], out / "medium_replay.npz")
            log(f"medium-replay: {card['medium_replay']['transitions']:,} transitions in "
                f"{card['medium_replay']['episodes']:,} episodes recorded")
        except DatasetError as exc:
            log(f"warning: no medium-replay dataset can be made from these policies: {exc}")
    atomic_write_json(out / "reference.json", card)
    (out / "README.md").write_text(render_card(card))
    return card


def _current_names(algo: str, overrides: dict[str, str] | None) -> list[tuple[str, str]]:
    """``overrides`` recorded at training time, under today's field names (the retraining
    command must run): ``num_updates`` of an online algorithm is ``total_env_steps`` now."""
    return list(current_names(registry.get(algo).config_cls, overrides or {}).items())


def render_card(card: dict[str, Any]) -> str:
    """A human-readable card for a family's reference policies (written next to them)."""
    t = card["training"]
    trainer = {"ppo": "PPO", "sac": "SAC"}.get(t["algo"], t["algo"])
    lines = [
        f"# Reference policies for {card['env_id']}",
        "",
        f"Made by `python -m bench.reference pick` from the policy snapshots of one {trainer} run; "
        "`reference.json` holds the same facts in machine-readable form. The dataset makers "
        "refuse a policy whose sha256 differs from the one recorded there.",
        "",
        f"| policy | file | sha256 | {trainer} env steps | mean ± std return |",
        "|---|---|---|---|---|",
    ]
    for which in ("expert", "medium"):
        e = card[which]
        lines.append(f"| {which} | `{e['file']}` | `{e['sha256']}` | {e['env_steps']:,} | "
                     f"{e['mean_return']:.1f} ± {e['std_return']:.1f} |")
    r = card["random"]
    lines.append(f"| uniform random | — | — | — | {r['mean_return']:.1f} ± {r['std_return']:.1f} |")
    if "medium_replay" in card:
        m = card["medium_replay"]
        lines += ["", f"`{m['file']}` (sha256 `{m['sha256']}`) holds the env actions of the "
                  f"training's first {m['transitions']:,} env steps ({m['episodes']:,} complete "
                  f"episodes, up to the medium snapshot at {m['env_steps']:,}; first reset seed "
                  f"{m['reset_seed']}): the medium-replay dataset is those episodes replayed "
                  "in the simulator (`bench.making.replay`)."]
    lines += [
        "",
        f"Returns: {card['episodes']} episodes each, acting {card['acting']}, reset seeds "
        f"{card['seeds']}. The datasets use ref_min = the random policy's and ref_max = the "
        "expert's mean return.",
        "",
        "## Training",
        "",
        f"- algorithm `{t['algo']}` on `{t['env_id']}`, seed {t['seed']}, torch threads "
        f"{t['torch_threads']}; config overrides `{card['expert']['train_overrides']}`",
        f"- command: `{card['expert']['train_command']}`",
        "- expert = the snapshot with the best 10-episode screen; medium = an earlier snapshot "
        "whose 100-episode return is within 25% of a third of the expert's (D4RL's recipe), "
        "trying the snapshots whose screens are closest first.",
        "",
        "## Retraining",
        "",
        "```bash",
        f"OMP_NUM_THREADS={t['torch_threads']} bench run --algo {t['algo']} --env {t['env_id']} --budget full "
        f"--seed {t['seed']} " + " ".join(f"--set {k}={v}" for k, v in
                                         _current_names(t["algo"], card["expert"]["train_overrides"])),
        f"python -m bench.reference pick results/{t['env_id']}/{t['algo']}/<variant>/seed_{t['seed']} "
        f"--env {t['env_id']} --out assets/{t['env_id'].split('-')[0].lower()}",
        "```",
        "",
        "Training is deterministic for a given machine, thread count and library versions"
        + ("; `hopper-medium-replay` replays it and checks that it ends at exactly `medium.pt` (on "
           "a CPU that computes differently it does not, and the replay is marked "
           "`replay_verified: NO`)." if t["env_id"] == "Hopper-v5" and t["algo"] == "ppo" else "."),
        "",
        "## Snapshot screening (10 stochastic episodes each)",
        "",
        "| snapshot | mean return |",
        "|---|---|",
    ]
    lines += [f"| {s['file']} | {s['mean_return_10']:.1f} |" for s in card["screening"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reference")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pick", help="pick expert and medium reference policies from a run's snapshots")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--env", required=True)
    p.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        pick(args.run_dir, args.env, args.out)
    except DatasetError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
