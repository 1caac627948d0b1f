"""``lewm collect | train | eval | check-env | probe | policy | run``: thin wrappers that parse arguments and call
the API. Config fields are set with ``--model/--train/--plan KEY=VALUE`` (``lewm policy --set``) in the grammar of
:mod:`lewm_agent.settings`; ``lewm COMMAND --help`` lists them."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import textwrap
import threading
import warnings
from pathlib import Path
from typing import Any

from .config import PRESETS, ModelConfig, PlanConfig, PolicyConfig, TrainConfig, preset
from .settings import apply_settings, help_text, parse_settings


class UsageError(ValueError):
    """A bad command line: the message names the flag and the fix (printed as one line, exit code 2)."""


class _Typed(str):
    """A ``KEY=VALUE`` setting given through an alias flag; ``typed`` is how the user wrote it (``--steps 0``), which
    an error names (:func:`lewm_agent.settings.apply_settings`)."""

    typed: str


class _Alias(argparse.Action):
    """``--steps N`` as ``--train steps=N``: appended to the group's ``KEY=VALUE`` list in command-line order (the
    later setting wins), parsed and checked by the same code as every other setting."""

    def __init__(self, option_strings, dest, group: str, field: str, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.group, self.field = group, field

    def __call__(self, parser, namespace, values, option_string=None):
        item = _Typed(f"{self.field}={values}")
        item.typed = f"{option_string} {values}"
        setattr(namespace, self.group, [*(getattr(namespace, self.group, None) or []), item])


GROUPS = {"model": ModelConfig, "train": TrainConfig, "plan": PlanConfig, "set": PolicyConfig}
"""The ``KEY=VALUE`` flags of ``lewm`` (``--model``, ``--train``, ``--plan``; ``lewm policy --set``) and their
dataclass."""


def _settings(group: str, base: Any, args: argparse.Namespace) -> Any:
    """``base`` (a config) with the command line's ``--GROUP KEY=VALUE`` settings (and their aliases) applied."""
    return apply_settings(base, getattr(args, group, None), f"--{group}")


SETTINGS_HELP = ("Settings are KEY=VALUE, the value written in the field's type: bool true or false (also yes/no, "
                 "on/off, 1/0), int (1e5 too), float, str, {a,b} one of the choices, X|none none or an X. An unknown "
                 "field or a bad value is refused before any work.")


def _add_settings(p: argparse.ArgumentParser, groups: dict[str, str], aliases: dict[str, str] | None = None,
                  defaults: Any = None, shown: str = "default") -> None:
    """``--GROUP KEY=VALUE`` flags (``groups``: group -> help) with their fields listed in ``p``'s help, and alias flags
    (``aliases``: ``--flag`` -> ``group.field``). ``defaults``: an object with the groups' configs as attributes (a
    preset) whose values the help shows in brackets, described by ``shown``; None: each dataclass's defaults; False:
    no values."""
    lines = [textwrap.fill(SETTINGS_HELP, 100)]
    for group, what in groups.items():
        p.add_argument(f"--{group}", action="append", metavar="KEY=VALUE", help=f"{what}; repeatable, fields below")
        values = False if defaults is False else getattr(defaults, group, None)
        lines.append(help_text(GROUPS[group], f"--{group} KEY=VALUE ({GROUPS[group].__name__}"
                               + (f"; [{shown}]):" if values is not False else "):"), values))
    for flag, target in (aliases or {}).items():
        group, field = target.split(".")
        p.add_argument(flag, action=_Alias, group=group, field=field, metavar=field.upper(),
                       help=f"same as --{group} {field}={field.upper()}")
    p.epilog = "\n\n".join(lines)
    p.formatter_class = argparse.RawDescriptionHelpFormatter


def _at_least(args: argparse.Namespace, minimum: int, *names: str) -> None:
    """UsageError naming the first flag among ``names`` (attribute names) given below ``minimum``."""
    for name in names:
        value = getattr(args, name, None)
        if value is not None and value < minimum:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} {value} must be >= {minimum}" + (" (leave it out for the default)." if
                             name in ("steps", "episodes") else "."))


def _add_protocol_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--eval-episodes", type=int, default=50, help="episodes of the protocol (default 50)")
    p.add_argument("--goal-offset", type=int, default=25, help="env steps from start row to goal row (default 25)")
    p.add_argument("--budget", type=int, default=50, help="env steps per episode (default 50)")
    p.add_argument("--eval-seed", type=int, default=0, help="seed of the start/goal pairs")
    p.add_argument("--keep-trivial", action="store_true",
                   help="keep pairs whose start already satisfies the goal (the LeWM reference keeps them; "
                        "by default they are redrawn)")
    p.add_argument("--video", type=int, default=0, metavar="N", help="write mp4s of the first N episodes")


ENV_HELP = ("env id: a lewm/ task (e.g. lewm/PushT-v1), any registered Gymnasium id, or MODULE:ENV_ID for an env "
            "registered by another package (MODULE is imported first, e.g. mypkg.envs:mypkg/Task-v0); "
            "see docs/foreign_envs.md")


def _add_env_module_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env-module", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (it registers envs and their experts); repeatable or comma-separated. "
                        "Needed on every command that makes the env, unlike the MODULE:ENV_ID form of --env")


def _json_dict(text: str | None, flag: str) -> dict[str, Any]:
    """A JSON object given on the command line (``{}`` when absent), or UsageError naming the flag."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as e:
        raise UsageError(f"{flag} is not JSON ({e}); pass e.g. '{{\"glow\": 0.15}}'.") from None
    if not isinstance(value, dict):
        raise UsageError(f"{flag} must be a JSON object such as '{{\"glow\": 0.15}}', got {text!r}.")
    return value


def _protocol(args):
    from .evaluation import EvalProtocol

    _at_least(args, 1, "eval_episodes", "goal_offset", "budget")
    _at_least(args, 0, "video")
    return EvalProtocol(num_episodes=args.eval_episodes, goal_offset=args.goal_offset, budget=args.budget,
                        seed=args.eval_seed, skip_trivial=not args.keep_trivial)


def _summary(records: dict[str, Any]) -> str:
    """One line per record (RunRecord or its dict): success with its interval; LeWM's planning time."""
    lines = []
    records = {name: r.to_dict() if hasattr(r, "to_dict") else r for name, r in records.items()}
    for name in ("lewm", "random"):
        if name in records:
            r = records[name]
            lo, hi = r["ci95"]
            lines.append(f"{name:>7}: success {100 * r['success_rate']:.0f}% ({r['successes']}/{r['num_episodes']}, "
                         f"95% CI {100 * lo:.0f}-{100 * hi:.0f}%)")
    plan_s = records.get("lewm", {}).get("extra", {}).get("plan_seconds_per_decision")
    if plan_s is not None:
        lines.append(f"planning: {plan_s * 1000:.1f} ms per env decision")
    return "\n".join(lines)


def cmd_collect(args) -> None:
    from .data import collect

    _at_least(args, 1, "episodes", "workers", "max_steps")
    _at_least(args, 8, "image_size")
    env_kwargs = _json_dict(args.env_kwargs, "--env-kwargs")
    if args.image_size is not None and env_kwargs.get("image_size", args.image_size) != args.image_size:
        raise UsageError(f"--image-size {args.image_size} and --env-kwargs image_size {env_kwargs['image_size']} "
                         "disagree; give the frame size once.")
    env_kwargs.setdefault("image_size", 64 if args.image_size is None else args.image_size)
    policy_kwargs = _json_dict(args.policy_kwargs, "--policy-kwargs")
    info = collect(args.env, args.out, num_episodes=args.episodes, policy=args.policy, seed=args.seed,
                   env_kwargs=env_kwargs, max_steps=args.max_steps, append=args.append, workers=args.workers,
                   policy_kwargs=policy_kwargs, overwrite=args.overwrite)
    print(f"wrote {info.path}: {info.num_episodes} episodes, {info.num_frames} frames, "
          f"policy success {info.attrs.get('policy_success_rate')}")


def cmd_train(args) -> None:
    from .train import train

    p = preset(args.preset)
    model, tr, plan = (_settings(group, getattr(p, group), args) for group in ("model", "train", "plan"))
    if args.time_limit is not None and not args.time_limit > 0:
        raise UsageError(f"--time-limit {args.time_limit} must be > 0 minutes (leave it out for no limit).")
    result = train(args.data, args.out, model, tr, plan, resume=args.resume,
                   time_limit_s=None if args.time_limit is None else 60 * args.time_limit,
                   action_low=args.action_low, action_high=args.action_high, overwrite=args.overwrite)
    if int(os.environ.get("RANK", "0")) == 0:  # torchrun: one line, not one per rank
        if result.steps < tr.steps:
            print(f"stopped at step {result.steps} of {tr.steps} after {result.seconds:.0f}s (--time-limit); "
                  f"continue with --resume")
        else:
            print(f"trained {result.steps} steps in {result.seconds:.0f}s; agent at {result.agent_dir}")
            if p.latent_policy is not None:  # the preset plans from a latent policy's proposal: train it too
                from .policy import ensure_policy

                m = ensure_policy(result.agent_dir, p.latent_policy, device=tr.device)
                if m is not None:
                    print(f"latent policy of preset {args.preset!r} trained in {m['seconds']:.0f}s, saved with "
                          "the agent")


def cmd_eval(args) -> None:
    from .files import atomic_write_json, check_output_file
    from .pipeline import evaluate_checkpoint

    out = check_output_file(Path(args.out) if args.out else Path(args.agent).parent / "eval.json")
    protocol = _protocol(args)
    _settings("plan", PlanConfig(), args)  # names, types and ranges checked before the agent is loaded
    records = evaluate_checkpoint(args.agent, protocol, data_path=args.data,
                                  video_dir=out.parent / "videos", video_episodes=args.video,
                                  with_random=not args.no_random, device=args.device,
                                  plan_overrides=parse_settings(PlanConfig, args.plan), env_id=args.env,
                                  env_kwargs=_json_dict(args.env_kwargs, "--env-kwargs") or None, video_root=out.parent)
    atomic_write_json(out, {name: r.to_dict() for name, r in records.items()}, default=str)
    lewm = records["lewm"]
    trained = lewm.extra["trained_env_id"]
    print(f"env {lewm.env_id} {json.dumps(lewm.extra['env_kwargs'], sort_keys=True)}"
          + (f" (the agent was trained on {trained})" if trained and trained != lewm.env_id
             else " (the agent's data records no env)" if not trained else ""))
    print(_summary(records))
    print(f"wrote {out} (videos relative to {out.parent})")


def cmd_check_env(args) -> int:
    from lewm_agent.envs.contract import check_goal_env

    results = check_goal_env(args.env_id, image_size=args.image_size,
                             env_kwargs=_json_dict(args.env_kwargs, "--env-kwargs"), seed=args.seed)
    failed = [c for c in results if not c.ok]
    for c in results:
        print(f"{'ok  ' if c.ok else 'FAIL'}  {c.name}" + (f": {c.message}" if c.message else ""))
    if failed:
        print(f"{args.env_id}: {len(failed)} of {len(results)} checks failed; the env does not meet the goal-env "
              "contract (docs/foreign_envs.md)", file=sys.stderr)
        return 1
    print(f"{args.env_id}: meets the goal-env contract ({len(results)} checks)")
    return 0


def cmd_probe(args) -> None:
    from .agent import LeWMAgent
    from .analysis import probe_agent
    from .pipeline import held_out_episodes

    agent = LeWMAgent.load(args.agent, device=args.device)
    episodes, ids, _ = held_out_episodes(agent, args.data)
    result = probe_agent(agent, episodes, ids)
    print(f"linear probe of the state from the latents: r = {result['probe_r']:.3f} "
          f"(per dim {', '.join(f'{r:.3f}' for r in result['probe_r_per_dim'])}; RMSE per dim in the state's "
          f"units {', '.join(f'{e:.4g}' for e in result['probe_rmse_per_dim'])}); "
          f"rank correlation of latent vs state distance: {result['distance_rank_corr']:.3f} (all pairs), "
          f"{result['local_rank_corr']:.3f} (frames <= 25 steps apart)")


def cmd_policy(args) -> None:
    from .policy import fit_policy

    cfg = _settings("set", PolicyConfig(), args)
    m = fit_policy(args.agent, cfg, data_path=args.data, device=args.device)
    val = "-" if m["val_loss"] is None else f"{m['val_loss']:.4f}"
    print(f"policy trained {m['steps']} steps in {m['seconds']:.1f}s on {m['samples']} (start, goal) samples of "
          f"{m['episodes']} episodes: train loss {m['train_loss']:.4f}, val loss {val} (proposing zeros: "
          f"{m['zero_loss']:.4f}); saved with the agent at {args.agent}")


def cmd_run(args) -> None:
    from .pipeline import run_pipeline

    from .files import check_output_dir

    _at_least(args, 1, "episodes", "workers", "max_steps")
    if args.episodes == 1:  # the experiment trains on some episodes and evaluates on held-out ones
        raise UsageError("--episodes 1 must be >= 2: one episode to train on, one held out for evaluation.")
    check_output_dir(args.out)
    protocol = _protocol(args)
    p = preset(args.preset)
    p.model, p.train, plan = (_settings(group, getattr(p, group), args) for group in ("model", "train", "plan"))
    env_kwargs = _json_dict(args.env_kwargs, "--env-kwargs") or None
    env_id = args.env or p.env_id or "lewm/TwoRoom-v1"
    records = run_pipeline(p, args.out, env_id=env_id, env_kwargs=env_kwargs, episodes=args.episodes, seed=args.seed,
                          policy=args.policy or p.policy,
                          protocol=protocol, video_episodes=args.video, plan=plan,
                          workers=args.workers, max_steps=args.max_steps)
    print(_summary(records))
    lewm = records["lewm"]
    print(f"LeWM: trained {lewm.train_seconds:.0f}s in all, this run {lewm.seconds:.0f}s; records in "
          f"{Path(args.out) / 'cells' / lewm.task}/ (lewm.json, random.json)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lewm", description="LeWorldModel: collect, train, evaluate.")
    sub = parser.add_subparsers(dest="command", required=True)
    cpu = preset("cpu")  # the default --preset: the values train and run's help shows

    p = sub.add_parser("collect", help="roll a collection policy into an HDF5 episode file")
    p.add_argument("--env", default="lewm/TwoRoom-v1", help=ENV_HELP + " (default lewm/TwoRoom-v1)")
    _add_env_module_arg(p)
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--policy", default="expert",
                   help="expert (the env's registered expert, see lewm_agent.envs.policies.register_expert) | random")
    p.add_argument("--policy-kwargs", default=None,
                   help='JSON dict of policy arguments, e.g. \'{"noise_std": 2.0, "repeat_prob": 0}\' (TwoRoom expert)')
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, default=None,
                   help="side of the square frames, pixels (passed to an env that takes image_size, else its frames "
                        "are resized; default 64, or the image_size of --env-kwargs)")
    p.add_argument("--env-kwargs", default=None, help="JSON dict of extra env arguments")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--append", action="store_true",
                   help="add episodes to an existing file (with a --seed past the file's: episode i is seeded "
                        "seed + i)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing file (else an existing --out is refused)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes collecting in parallel (rendering is the slow part; the file is the same for any N)")
    p.add_argument("--out", required=True, help="episode file to write (e.g. data/tworoom.h5)")
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("train", help="train LeWM on an episode file")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--preset", default="cpu", choices=sorted(PRESETS),
                   help="model, training and planning settings to start from (default cpu); --model/--train/--plan "
                        "change single fields")
    p.add_argument("--resume", action="store_true", help="continue from out/checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run in --out (its agent, checkpoint and tb/); else a run there is refused")
    p.add_argument("--time-limit", type=float, metavar="MINUTES",
                   help="checkpoint and stop after this many minutes; continue later with --resume")
    p.add_argument("--action-low", type=float, nargs="+", metavar="LOW",
                   help="the env's lower action bound, one number per action dimension (with --action-high): "
                        "the agent clips its actions to them. Default: the file's attributes; a file without "
                        "them (e.g. from stable-worldmodel) uses the min/max of its actions, with a warning. "
                        "Give them again with --resume")
    p.add_argument("--action-high", type=float, nargs="+", metavar="HIGH",
                   help="the env's upper action bound, one number per action dimension (see --action-low)")
    _add_settings(p, {"model": "a model field", "train": "a training field",
                      "plan": "a planning field, saved with the agent"},
                  {"--steps": "train.steps", "--batch-size": "train.batch_size", "--lr": "train.lr",
                   "--device": "train.device", "--seed": "train.seed"}, defaults=cpu, shown="--preset cpu's value")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a trained agent with the LeWM protocol")
    p.add_argument("--agent", required=True, help="agent directory (run/agent)")
    p.add_argument("--data", default=None,
                   help="episode file of held-out episodes (default: the agent's validation split)")
    p.add_argument("--out", default=None,
                   help="JSON file of the records, {lewm: ..., random: ...} (default: run/eval.json)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-random", action="store_true", help="skip the random-policy baseline")
    _add_settings(p, {"plan": "a planning field instead of the agent's saved one"}, defaults=False)
    p.add_argument("--env", default=None,
                   help=ENV_HELP + ". Default: the env recorded with the agent's data. Another env is made with its "
                        "own defaults at the agent's frame size (plus --env-kwargs); its states must be the data's")
    _add_env_module_arg(p)
    p.add_argument("--env-kwargs", default=None,
                   help="JSON dict of env arguments (with --env: over the agent's image_size; else over the recorded "
                        "ones)")
    _add_protocol_args(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("check-env", help="run the goal-env contract on any env (exit 1 and one line per failed check)")
    p.add_argument("env_id", metavar="ENV_ID", help=ENV_HELP)
    _add_env_module_arg(p)
    p.add_argument("--image-size", type=int, default=64, help="frame side to check, pixels (default 64)")
    p.add_argument("--env-kwargs", default=None, help="JSON dict of env arguments")
    p.add_argument("--seed", type=int, default=0, help="offset of every seed the checks use")
    p.set_defaults(func=cmd_check_env)

    p = sub.add_parser("probe", help="linear probe of the physical state from a trained agent's latents")
    p.add_argument("--agent", required=True)
    p.add_argument("--data", default=None, help="episode file (default: the agent's validation episodes)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("policy",
                       help="train a latent goal-conditioned policy for an agent (warm-starts or replaces planning)")
    p.add_argument("agent", metavar="AGENT_DIR", help="agent directory (run/agent); saved back with the policy")
    p.add_argument("--data", default=None,
                   help="episode file (default: the agent's training file, minus its held-out episodes)")
    _add_settings(p, {"set": "a policy field (e.g. hidden=256)"}, {"--steps": "set.steps"})
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_policy)

    p = sub.add_parser("run", help="collect + split + train + evaluate + videos, resumable; records in OUT/cells/TASK/")
    p.add_argument("--env", default=None,
                   help=ENV_HELP + " (default: the preset's task, e.g. --preset reacher: lewm/Reacher-v0; else "
                                   "lewm/TwoRoom-v1)")
    _add_env_module_arg(p)
    p.add_argument("--preset", default="cpu", choices=sorted(PRESETS))
    p.add_argument("--env-kwargs", default=None, help='JSON dict of env arguments, e.g. \'{"glow": 0.15}\'')
    p.add_argument("--out", default="runs/tworoom-cpu")
    p.add_argument("--episodes", type=int, default=None, help="episodes to collect (default: the preset's)")
    p.add_argument("--policy", default=None, help="collection policy: expert | random (default: the preset's)")
    p.add_argument("--max-steps", type=int, default=None, help="cap on collected episode length")
    p.add_argument("--workers", type=int, default=1, help="collection processes")
    p.add_argument("--seed", type=int, default=0, help="seed of the data, the split, training and the pairs")
    _add_settings(p, {"model": "a model field", "train": "a training field", "plan": "a planning field"},
                  {"--steps": "train.steps"}, defaults=cpu, shown="--preset cpu's value")
    _add_protocol_args(p)
    p.set_defaults(func=cmd_run, video=4)
    return parser


def _show_warning(default):
    """``warnings.showwarning`` that prints the library's own warnings (episode files, checkpoints) as one
    ``warning: ...`` line."""

    def show(message, category, filename, lineno, file=None, line=None):
        dataset = sys.modules.get("lewm_agent.data.dataset")  # not imported: not its warning (and no torch import)
        checkpoint = sys.modules.get("lewm_agent.checkpoint")
        if ((dataset is not None and issubclass(category, dataset.EpisodeFileWarning))
                or (checkpoint is not None and issubclass(category, checkpoint.CheckpointWarning))):
            print(f"warning: {message}", file=sys.stderr if file is None else file)
        else:
            default(message, category, filename, lineno, file, line)

    return show


def user_error(e: BaseException) -> str | None:
    """The one-line message of an error a user's input caused, or None for a bug (which keeps its traceback).

    User errors: the library's own (every one is a ValueError: configs, checkpoints, episode files, output
    paths, tasks, command lines), a KeyError whose text is a sentence (an unknown name; a bare key is a bug),
    and the file-system errors a path can cause (missing, a directory, not writable...)."""
    if isinstance(e, ValueError):
        text = str(e)
    elif isinstance(e, KeyError) and e.args and isinstance(e.args[0], str) and " " in e.args[0]:
        text = e.args[0]
    elif isinstance(e, (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)):
        text = f"{e.strerror or e}: {e.filename}" if e.filename else str(e)
    else:
        return None
    return " ".join(text.split()) or type(e).__name__


@contextlib.contextmanager
def sigterm_as_interrupt():
    """While inside, SIGTERM raises KeyboardInterrupt as Ctrl-C does, so that a terminated command cleans up
    (temporary files and directories, worker processes) the same way. Only in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning(warnings.showwarning)
        try:
            with sigterm_as_interrupt():
                if getattr(args, "env_module", None):
                    from lewm_agent import envs

                    envs.import_env_modules(args.env_module)
                code = args.func(args)
        except KeyboardInterrupt:
            print("interrupted; a partial run continues with --resume (train) or is left as it was (collect)",
                  file=sys.stderr)
            return 130
        except Exception as e:  # noqa: BLE001 - sorted below: a user's error is one line, a bug keeps its traceback
            message = user_error(e)
            if message is None:
                raise
            print(f"error: {message}", file=sys.stderr)
            return 2
    return code or 0


if __name__ == "__main__":
    sys.exit(main())

