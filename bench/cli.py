"""Command line: ``bench run | list | datasets | results | sweep | report`` (also ``python -m bench``).

Exit codes: 0 success, 1 a run or dataset failed (message says why), 2 usage error, 130
interrupted by Ctrl-C and 143 by SIGTERM (both stop the same way: resumable), 141 the reader of
the output went away (``bench list | head -n 1``; stops quietly, as tools killed by SIGPIPE do).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

from bench.config import BUDGET_NAMES, EVAL_MODES, check_seed
from bench.errors import BenchError, DatasetError, Terminated, UsageError, close_matches

DEFAULT_OUT = Path("results")


def _folder(text: str) -> Path:
    """argparse type of --out / --to: a path, and not an empty one (``Path("")`` is the current
    directory, where a script whose variable was unset would scatter its runs)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; give a folder, e.g. --out results")
    return Path(text)


def _seed(text: str) -> int:
    """argparse type of every --seed: an integer numpy's seeding accepts."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    try:
        return check_seed(value)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="train one algorithm on one dataset, evaluate, store the score",
                       description="Train ALGO on DATASET for each seed, evaluate it in the "
                                   "dataset's environment and store a normalized score under "
                                   "OUT/<dataset>/<algo>/<variant>/seed_<n>/.")
    p.add_argument("--algo", required=True, help="algorithm name (see `bench list`)")
    p.add_argument("--dataset", help="dataset alias (hopper-random, ...) or a local Minari dataset id")
    p.add_argument("--env", help="gymnasium env id, for online algorithms trained without a dataset "
                                 "(e.g. --algo ppo --env Hopper-v5)")
    # "extend": repeating a flag adds to it (--seed 0 --seed 3 is --seed 0 3); the default is
    # applied after parsing, because argparse would extend a default list.
    p.add_argument("--seed", type=_seed, nargs="+", action="extend", default=None,
                   help="one or more seeds (default 0)")
    p.add_argument("--budget", default="quick", choices=BUDGET_NAMES,
                   help="smoke: seconds (CI); quick: minutes on a CPU (default); "
                        "full: published hyper-parameters")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, type-checked (repeatable)")
    p.add_argument("--out", type=_folder, default=DEFAULT_OUT, help="results root (default ./results)")
    p.add_argument("--resume", action="store_true", help="continue an unfinished run from its checkpoint")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--eval-episodes", type=int, default=10, help="evaluation episodes (default 10)")
    p.add_argument("--eval-mode", default="auto", choices=EVAL_MODES,
                   help="how evaluation runs its envs: sync (in this process), async (worker processes), "
                        "sharded (episodes split over one forked process per torch thread); default "
                        "auto: async for Car Racer latents, sharded when torch has more than one "
                        "thread, else sync")
    _add_logger_flags(p)


def _add_logger_flags(p: argparse.ArgumentParser) -> None:
    """--logger and --wandb-project, shared by ``run`` and ``sweep``."""
    p.add_argument("--logger", action="append", default=None, metavar="NAME[,NAME]",
                   help="also log the metrics to tensorboard (<run_dir>/tensorboard/) and/or "
                        "wandb (offline unless WANDB_MODE is set); repeatable or "
                        "comma-separated; default none (metrics.jsonl is always written)")
    p.add_argument("--wandb-project", metavar="NAME",
                   help="W&B project of --logger wandb (default $WANDB_PROJECT, else bench)")


def _add_datasets(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("datasets", help="list, inspect, make or verify datasets")
    dsub = p.add_subparsers(dest="datasets_cmd", required=True, metavar="{list,info,make,verify}")
    dsub.add_parser("list", help="aliases, where each resolves, whether it is present")
    info = dsub.add_parser("info", help="metadata and provenance of a dataset")
    info.add_argument("name")
    make = dsub.add_parser("make", help="generate the suite's own dataset for an alias")
    make.add_argument("name")
    make.add_argument("--transitions", type=int, default=None,
                      help="at least this many transitions (default: the alias's, 1M for hopper; "
                           "not for medium-replay, whose size is set by its recorded training)")
    make.add_argument("--seed", type=_seed, default=None, help="seed of the generating policy "
                                                               "and envs (default 0)")
    make.add_argument("--force", action="store_true",
                      help="make it again; the existing one is moved to a backup, not deleted")
    verify = dsub.add_parser("verify", help="check data files against their recorded sha256 "
                                            "(one dataset, or every local one the suite made)")
    verify.add_argument("name", nargs="?", help="alias or Minari id (default: all local datasets)")


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run every missing algorithm × dataset × seed combination",
                       description="Run every combination of a sweep file (TOML) and/or the "
                                   "flags below that has no result.json yet; interrupted runs "
                                   "resume from their checkpoint. A flag given here replaces "
                                   "the sweep file's value for that key. Exit 1 if any run "
                                   "failed (each failure is in its run directory's error.json).")
    p.add_argument("sweep_file", nargs="?", type=Path, help="TOML sweep file (optional)")
    # Defaults are None so that only flags actually given override the sweep file.
    p.add_argument("--algo", nargs="+", action="extend", help="algorithms")
    p.add_argument("--dataset", nargs="+", action="extend", help="dataset aliases or local Minari ids")
    p.add_argument("--env", nargs="+", action="extend", help="gymnasium env ids (online algorithms only)")
    p.add_argument("--seed", type=_seed, nargs="+", action="extend", help="seeds (default 0)")
    p.add_argument("--budget", choices=BUDGET_NAMES, help="default quick")
    p.add_argument("--set", dest="overrides", action="append", default=None,
                   metavar="KEY=VALUE", help="config override for every run (repeatable; "
                                             "replaces the sweep file's [set] table)")
    p.add_argument("--eval-episodes", type=int, help="evaluation episodes (default 10)")
    p.add_argument("--device", help="cpu, cuda or auto (default)")
    p.add_argument("--out", type=_folder, default=DEFAULT_OUT, help="results root (default ./results)")
    p.add_argument("--backend", default="local", choices=["local", "ray"],
                   help="local process pool (default) or Ray")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs at a time (local: at most the number of cores, one torch thread "
                        "each when more than 1; ray: CPUs of the local Ray instance)")
    p.add_argument("--address", help="address of an existing Ray cluster (with --backend ray); "
                                     "the results root and datasets must be on storage every "
                                     "node sees")
    p.add_argument("--dry-run", action="store_true",
                   help="list every run as finished / damaged / running elsewhere / resume / "
                        "run, and run nothing")
    _add_logger_flags(p)


def _add_run_filters(p: argparse.ArgumentParser) -> None:
    """The run selection shared by ``results`` and ``report``."""
    p.add_argument("--dataset", nargs="+", action="extend", default=None, metavar="NAME",
                   help="only these datasets (one or more, or the flag repeated; default all)")
    p.add_argument("--algo", nargs="+", action="extend", default=None, metavar="NAME",
                   help="only these algorithms (one or more, or the flag repeated; default all)")
    p.add_argument("--variant", nargs="+", action="extend", default=None, metavar="NAME",
                   help="only these variants, e.g. quick (one or more, or the flag repeated; "
                        "default all)")


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="Markdown + self-contained HTML report of a results root")
    p.add_argument("--out", type=_folder, default=DEFAULT_OUT, help="results root (default ./results)")
    p.add_argument("--to", type=_folder, default=Path("report"),
                   help="folder for report.md, report.html and figures/ (default ./report)")
    _add_run_filters(p)
    p.add_argument("--title", default="bench report", help="report title")
    p.add_argument("--reps", type=int, default=5000,
                   help="bootstrap resamples for the rliable intervals (default 5000)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description="Offline-RL benchmark suite.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    sub.add_parser("list", help="algorithms and datasets")
    algos = sub.add_parser("algos", help="an algorithm's config: fields, values per budget, help")
    asub = algos.add_subparsers(dest="algos_cmd", required=True, metavar="{show}")
    show = asub.add_parser("show", help="every config field of NAME with its type, its value at "
                                        "each budget and its help line")
    show.add_argument("name", help="algorithm (see `bench list`)")
    _add_datasets(sub)
    res = sub.add_parser("results", help="normalized-score table over a results root")
    res.add_argument("--out", type=_folder, default=DEFAULT_OUT, help="results root (default ./results)")
    res.add_argument("--format", default="markdown", choices=["markdown", "csv", "json"])
    _add_run_filters(res)
    res.add_argument("--conditions", action="store_true",
                     help="a row per evaluation condition (goal source, target return) instead of "
                          "each run's headline score")
    _add_sweep(sub)
    _add_report(sub)
    return parser


def _shown(value: Any, spec: str) -> str:
    return "?" if value is None else format(value, spec)


def cmd_run(args: argparse.Namespace) -> int:
    from bench.config import parse_overrides
    from bench.records import canonical_request_overrides
    from bench.run import RunRequest, execute, parse_logger_names, run_dir

    # Canonical from here on (lr=1e-3 → lr=0.001): one spelling per setting, one run directory.
    overrides = canonical_request_overrides(args.algo, parse_overrides(args.overrides),
                                            args.budget)
    for seed in args.seed or [0]:
        req = RunRequest(algo=args.algo, dataset=args.dataset, env=args.env, seed=seed, budget=args.budget,
                         overrides=overrides, out=args.out, resume=args.resume, device=args.device,
                         eval_episodes=args.eval_episodes, eval_mode=args.eval_mode,
                         loggers=parse_logger_names(args.logger or []),
                         wandb_project=args.wandb_project)
        directory = run_dir(req)
        if args.resume and not (directory / "checkpoint.pt").exists() \
                and not (directory / "result.json").exists():
            print(f"[bench] --resume: {directory} has no checkpoint; starting at step 0",
                  file=sys.stderr)
        result = execute(req)
        score = result["normalized_score"]
        score_txt = "n/a (no reference scores)" if score is None else f"{score:.1f}"
        # A finished run's record is shown as read (results.py checked its types; fields a
        # hand-made one leaves out read "?").
        timings = result.get("timings") or {}
        print(f"{args.algo} on {args.dataset or args.env} seed {seed} "
              f"[{result.get('condition', 'default')}]: "
              f"return {_shown(result.get('mean_return'), '.1f')}, normalized score {score_txt} "
              f"({_shown(timings.get('train_seconds'), '.0f')}s training, "
              f"{_shown(timings.get('eval_seconds'), '.0f')}s evaluation) in {directory}")
    return 0


def _dataset_status(alias) -> tuple[str, str]:
    from bench.data import storage

    if alias.official_id and storage.is_present(alias.official_id):
        return "official (local)", alias.official_id
    if storage.is_present(alias.local_id):
        from bench.data.resolve import local_source

        meta = storage.read_metadata(alias.local_id)
        if storage.incomplete_reason(alias.local_id, meta):
            return "incomplete (make --force)", alias.local_id
        if local_source(meta) == "official (converted)":
            return "official, converted (local)", alias.local_id
        return "self-generated (local)", alias.local_id
    if storage.dataset_dir(alias.local_id).exists():  # e.g. a make that was killed
        return "incomplete (make --force)", alias.local_id
    from bench.making.makers import MAKERS

    made = alias.generator in MAKERS
    return "missing (made on first use)" if made else "missing", alias.local_id


def cmd_list(args: argparse.Namespace) -> int:
    from bench import registry
    from bench.data.catalog import ALIASES

    algorithms = registry.all_algorithms()
    width = max(map(len, algorithms))
    print("Algorithms:")
    for name, entry in algorithms.items():
        print(f"  {name:<{width}} {entry.kind:<8} {entry.description}")
    print("\nDatasets:")
    width = max(map(len, ALIASES))
    for name, alias in ALIASES.items():
        status, dataset_id = _dataset_status(alias)
        official = alias.official_id or "none"
        print(f"  {name:<{width}} {status:<28} {dataset_id}  (official: {official}) — "
              f"{alias.description}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from bench.data import storage
    from bench.data.catalog import ALIASES
    from bench.data.resolve import resolve
    from bench.making.makers import make_alias
    from bench.errors import unknown_name

    if args.datasets_cmd == "list":
        width = max(map(len, ALIASES))
        for name, alias in ALIASES.items():
            status, dataset_id = _dataset_status(alias)
            print(f"{name:<{width}} {status:<28} {dataset_id}  path: {storage.dataset_dir(dataset_id)}")
        return 0
    if args.datasets_cmd == "make":
        if args.name not in ALIASES:
            raise unknown_name("dataset alias", args.name, ALIASES)
        meta = make_alias(ALIASES[args.name], num_transitions=args.transitions, seed=args.seed,
                          force=args.force)
        print(f"made {meta['dataset_id']}: {meta['total_episodes']} episodes, "
              f"{meta['total_steps']} steps, ref_min {meta['ref_min_score']:.1f}, "
              f"ref_max {meta['ref_max_score']:.1f}, sha256 {meta['data_sha256'][:16]}…")
        return 0
    if args.datasets_cmd == "verify":
        return _verify(args.name)
    ds = resolve(args.name, download=False, check_complete=False)
    info = ds.provenance()
    reason = storage.incomplete_reason(ds.dataset_id, ds.metadata)
    info["status"] = f"incomplete: {reason}" if reason else "complete"
    info["path"] = str(ds.path)
    info["description"] = ds.metadata.get("description")
    info["env_spec"] = ds.metadata.get("env_spec")
    print(json.dumps(info, indent=2, default=str))
    return 0


def _verify(name: str | None) -> int:
    """Recompute sha256 of one dataset or of every local dataset that records one."""
    from bench.data import storage
    from bench.data.resolve import resolve

    if name is not None:
        ids = [resolve(name, download=False).dataset_id]
    else:
        root = storage.minari_root()
        # A dataset directory with either file: one that lost the other is broken, not absent.
        ids = sorted({str(p.parent.parent.relative_to(root))
                      for pattern in ("*/*/*/data/metadata.json", "*/*/*/data/" + storage.DATA_FILE)
                      for p in root.glob(pattern) if not p.relative_to(root).parts[0].startswith(".")})
    bad = 0
    for dataset_id in ids:
        try:
            metadata = storage.read_metadata(dataset_id)
        except DatasetError as exc:
            if name is not None:
                raise
            bad += 1
            print(f"BROKEN {dataset_id}: {exc}")
            continue
        recorded = metadata.get("data_sha256")
        reason = (storage.incomplete_reason(dataset_id, metadata)
                  if storage.data_file(dataset_id).is_file() else None)
        if reason is not None:
            bad += 1
            print(f"INCOMPLETE {dataset_id}: {reason}. Make it again with `bench datasets make "
                  "<alias> --force` (keeps a backup).")
            continue
        if recorded is None:
            if name is not None:
                raise BenchError(f"{dataset_id} records no checksum (not made by bench); nothing "
                                 "to verify against.")
            print(f"skip {dataset_id} (no recorded checksum: not made by bench)")
            continue
        if not storage.data_file(dataset_id).is_file():
            bad += 1
            print(f"MISSING {dataset_id}: no data file at {storage.data_file(dataset_id)}. Make it "
                  "again with `bench datasets make <alias> --force` (keeps a backup).")
            continue
        actual = storage.sha256_file(storage.data_file(dataset_id))
        if actual != recorded:
            bad += 1
            print(f"MISMATCH {dataset_id}: recorded {recorded}, file {actual} "
                  f"({storage.data_file(dataset_id)}). Make it again with `bench datasets make "
                  f"<alias> --force` (keeps a backup).")
        else:
            print(f"ok {dataset_id} sha256 {actual}")
    return 1 if bad else 0


def _require_results_root(root: Path) -> None:
    if not root.exists():
        raise UsageError(f"results root {root} does not exist (runs write to --out, default ./results).")
    if not root.is_dir():  # a file holds no runs: say so rather than report an empty table
        raise UsageError(f"results root {root} is not a directory; give --out the folder the runs "
                         "were written to (default ./results).")


def _unmatched_filters(loaded: Any, args: argparse.Namespace, root: Path,
                       refuse_empty: bool = False) -> None:
    """Name each --dataset / --algo / --variant value that no finished run under ``root`` has,
    with the close ones that exist (a typo otherwise showed an empty table and nothing else): a
    note on stderr, or with ``refuse_empty`` a usage error when the filters select no run at all
    (``bench report`` would write an empty report)."""
    from bench.results import select_runs

    problems = []
    for column, wanted in (("dataset", args.dataset), ("algo", args.algo),
                           ("variant", args.variant)):
        present = sorted(set(loaded[column])) if column in loaded else []
        for name in wanted or []:
            if name not in present:
                close = close_matches(name, present)
                problems.append(f"{column} {name!r}" + (f"; did you mean: {', '.join(close)}?"
                                                        if close else ""))
    if refuse_empty and select_runs(loaded, args.dataset, args.algo, args.variant).empty:
        what = (f"has {' / '.join(problems)}" if problems else
                "matches --dataset, --algo and --variant together")
        raise UsageError(f"no finished run under {root} {what} (nothing selected; `bench "
                         "results` lists what is there).")
    for problem in problems:
        print(f"[bench] no finished run under {root} has {problem}"
              + ("" if problem.endswith("?") else "."), file=sys.stderr)


def cmd_results(args: argparse.Namespace) -> int:
    from bench.results import format_table, load_results, score_table, select_runs

    _require_results_root(args.out)
    loaded = load_results(args.out, conditions=args.conditions)
    _unmatched_filters(loaded, args, args.out)
    runs = select_runs(loaded, args.dataset, args.algo, args.variant)
    table = format_table(score_table(runs), args.format)
    print(table, end="" if table.endswith("\n") else "\n")  # csv ends with its own newline
    unscored = runs[runs["normalized_score"].isna()].drop_duplicates("path")
    if len(unscored):  # an env or dataset without reference returns: no normalized score
        print(f"[bench] {len(unscored)} run(s) left out: no normalized score (no reference "
              "returns for their env or dataset): " + ", ".join(unscored["path"].head(3))
              + (", ..." if len(unscored) > 3 else ""), file=sys.stderr)
    skipped = select_runs(loaded.attrs["skipped"], args.dataset, args.algo, args.variant)
    for status, group in skipped.groupby("status"):
        what = ("counted once (the same dataset, algorithm, variant and seed in another directory)"
                if status == "duplicate" else "left out (result.json cannot be read)")
        print(f"[bench] {len(group)} {status} run record(s) {what}: "
              + ", ".join(group["path"].head(3)) + (", ..." if len(group) > 3 else ""),
              file=sys.stderr)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from bench.config import parse_overrides
    from bench.run import parse_logger_names
    from bench.sweep import format_summary, load_sweep_file, make_spec, run_sweep

    grids = load_sweep_file(args.sweep_file) if args.sweep_file else [{}]
    flags = {"algo": args.algo, "dataset": args.dataset, "env": args.env, "seed": args.seed,
             "budget": args.budget, "eval_episodes": args.eval_episodes, "device": args.device,
             "overrides": None if args.overrides is None else parse_overrides(args.overrides),
             "logger": None if args.logger is None else list(parse_logger_names(args.logger)),
             "wandb_project": args.wandb_project}
    specs = [make_spec(grid, flags) for grid in grids]
    try:
        report = run_sweep(specs, args.out, backend=args.backend, jobs=args.jobs,
                           address=args.address, dry_run=args.dry_run,
                           log=print if args.dry_run else None)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated)
        print("bench: sweep interrupted; run the same command again to finish it (finished runs "
              "are skipped, interrupted ones resume from their checkpoint).", file=sys.stderr)
        return _interrupted_code(exc)
    if report is None:  # --dry-run
        return 0
    print(format_summary(report))
    return 1 if report.unfinished else 0


def cmd_report(args: argparse.Namespace) -> int:
    from bench.report import build_report

    _require_results_root(args.out)
    if args.dataset or args.algo or args.variant:
        from bench.results import load_results
        _unmatched_filters(load_results(args.out), args, args.out, refuse_empty=True)
    paths = build_report(args.out, args.to, datasets=args.dataset, algos=args.algo,
                         variants=args.variant, title=args.title, reps=args.reps)
    print(f"wrote {paths.markdown} and {paths.html}")
    return 0


def cmd_algos(args: argparse.Namespace) -> int:
    from bench import registry
    from bench.config import BUDGET_NAMES, describe_fields, make_config

    entry = registry.get(args.name)
    budgets = {b: make_config(entry.config_cls, b, {}, entry.defaults, entry.presets)
               for b in BUDGET_NAMES}
    rows = describe_fields(entry.config_cls, budgets)
    print(f"{entry.name} ({entry.kind}): {entry.description}")
    print(f"config {entry.config_cls.__name__}; change a field with --set FIELD=VALUE"
          + (f"; fixed by this variant: {', '.join(f'{k}={v!r}' for k, v in entry.defaults.items())}"
             if entry.defaults else ""))
    columns = ["field", "type", *BUDGET_NAMES]
    cells = [[str(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)) + "  help")
    for row, r in zip(cells, rows):
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)) + "  " + r["help"])
    return 0


COMMANDS = {"run": cmd_run, "list": cmd_list, "algos": cmd_algos, "datasets": cmd_datasets,
            "results": cmd_results, "sweep": cmd_sweep, "report": cmd_report}


def _how_to_continue(args: argparse.Namespace) -> str:
    """What to type after an interrupt: a dataset is made again from the start (nothing of an
    interrupted one is kept), a run continues from its checkpoint."""
    if args.command == "datasets" and args.datasets_cmd == "make":
        force = " --force" if args.force else ""
        return (f"nothing was written to the Minari root; `bench datasets make {args.name}{force}` "
                "makes it again from the start.")
    if args.command == "run":
        return ("the same command continues it: with --resume from the last checkpoint when "
                "one was written, otherwise from the start.")
    return "nothing was left half done; run the command again."


def _interrupted_code(exc: KeyboardInterrupt) -> int:
    return getattr(exc, "exit_code", 130)  # 130 = 128 + SIGINT; Terminated: 143


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (``kill``, a job scheduler) raises Terminated, a KeyboardInterrupt, while the
    command runs: it stops exactly as on Ctrl-C, with the same message and resumable state."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    pid = os.getpid()

    def on_sigterm(signum: int, frame: Any) -> None:
        if os.getpid() != pid:
            # A forked child (a sharded evaluation, async envs) inherits this handler; its parent
            # stops it with SIGTERM, so it dies as it would have without the handler.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _silence_broken_pipes() -> None:
    """Point every output whose reader went away at /dev/null: the output still buffered for it
    would otherwise raise again (with a traceback) when Python flushes it at exit."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
            except (OSError, ValueError):  # a stream without a file descriptor (tests)
                pass


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with _sigterm_as_interrupt():
            return _main(args)
    except BrokenPipeError:
        # `bench list | head -n 1`: the reader has what it wanted. Stop without a traceback, with
        # the status a shell reports for tools that SIGPIPE stops (128 + 13).
        _silence_broken_pipes()
        return 141


def _main(args: argparse.Namespace) -> int:
    try:
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # here, not at exit: a reader that went away is noticed in main()
        return code
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated)
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(f"bench: {what}; {_how_to_continue(args)}", file=sys.stderr)
        return _interrupted_code(exc)
    except (MemoryError, RuntimeError) as exc:
        # Out of memory is usually settings too large for the machine (--set hidden=1000000000);
        # torch reports it as a RuntimeError ("can't allocate memory", CUDA "out of memory").
        # The run directory and its last checkpoint are kept, as after any other failure.
        text = str(exc)
        if not (isinstance(exc, MemoryError) or "allocate memory" in text
                or "out of memory" in text.lower()):
            raise
        print(f"bench: error: out of memory ({text.splitlines()[-1][:200] if text else 'MemoryError'}). "
              "The model, batch or dataset is too large for this machine; lower the sizes given "
              "with --set (hidden sizes, batch_size, ...).", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
