"""Building the Car Racer family's committed pieces (both run once; their outputs are committed).

``python -m bench.carracing train-encoder`` trains the frozen vision encoder and writes
``assets/carracing/encoder.{pt,json}`` (about 15 minutes on 2 cores).
``python -m bench.carracing references`` measures the reference scores (the random policy and each
driver level, 20 episodes each) and writes ``assets/carracing/reference.json``."""
from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.carracing", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    refs = sub.add_parser("references", help="measure random and driver returns, write the card")
    refs.add_argument("--episodes", type=int, default=20)
    enc = sub.add_parser("train-encoder", help="train the vision encoder, write weights + card")
    enc.add_argument("--episodes", type=int, default=None, help="driver episodes of frames")
    enc.add_argument("--epochs", type=int, default=None)
    enc.add_argument("--seed", type=int, default=0)
    enc.add_argument("--out", default=None, help="encoder path (default assets/carracing/"
                     "encoder.pt)")
    args = parser.parse_args(argv)
    if args.command == "train-encoder":
        from bench.carracing.train_encoder import EncoderTraining, train_encoder

        cfg = EncoderTraining(seed=args.seed)
        if args.episodes is not None:
            cfg.episodes = args.episodes
        if args.epochs is not None:
            cfg.epochs = args.epochs
        card = train_encoder(cfg, args.out)
        print(json.dumps({"sha256": card["sha256"], "linear_probe_r2": card["linear_probe_r2"],
                          "loss_per_epoch": card["training"]["loss_per_epoch"]}))
    if args.command == "references":
        from bench.carracing.data import measure_references, reference_card_path

        card = measure_references(episodes=args.episodes)
        summary = {k: round(v["mean_return"], 1) for k, v in card.items() if isinstance(v, dict)}
        print(json.dumps(summary), "->", reference_card_path())
    return 0


if __name__ == "__main__":
    sys.exit(main())
