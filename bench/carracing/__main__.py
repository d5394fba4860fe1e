"""``python -m bench.carracing references`` measures the Car Racer reference scores (the random
policy and each driver level, 20 episodes each) and writes ``datasets/carracing/reference.json``."""
from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.carracing", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    refs = sub.add_parser("references", help="measure random and driver returns, write the card")
    refs.add_argument("--episodes", type=int, default=20)
    args = parser.parse_args(argv)
    if args.command == "references":
        from bench.carracing.data import measure_references, reference_card_path

        card = measure_references(episodes=args.episodes)
        summary = {k: round(v["mean_return"], 1) for k, v in card.items() if isinstance(v, dict)}
        print(json.dumps(summary), "->", reference_card_path())
    return 0


if __name__ == "__main__":
    sys.exit(main())
