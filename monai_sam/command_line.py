"""What ``python -m monai.bundle run`` does not do for a bundle's user: refuse an override whose name is not in
the configs (a typo such as ``--dataset_dirr`` would otherwise add a new, unused key and run on the default
data), and print a data error as the last lines of a failed run instead of MONAI's generic
``Failed to evaluate ConfigExpression`` at the bottom of a long traceback.

Both are switched on by :func:`guard_bundle_run` in each bundle's ``initialize`` list. They only act when
the process is a ``monai.bundle run`` command; under MONAI Label (which never runs ``initialize``) or from
Python they do nothing.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from monai_sam.data.errors import DataError, data_error_in

__all__ = ["check_override_names", "guard_bundle_run", "known_ids", "report_data_errors_last"]


def _is_bundle_run(argv: Sequence[str]) -> bool:
    return len(argv) >= 2 and Path(argv[0]).parent.name == "bundle" and argv[1] == "run"


def _options(argv: Sequence[str]) -> dict[str, str | None]:
    """``--name value`` / ``--name=value`` pairs of a fire command line, in order."""
    options: dict[str, str | None] = {}
    words = list(argv)
    for i, word in enumerate(words):
        if not word.startswith("--"):
            continue
        name, _, value = word[2:].partition("=")
        if not value and i + 1 < len(words) and not words[i + 1].startswith("--"):
            value = words[i + 1]
        options[name] = value or None
    return options


def _config_files(value: str | None) -> list[str]:
    if not value:
        return []
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = value
    return [str(p) for p in (parsed if isinstance(parsed, (list, tuple)) else [parsed])]


def known_ids(config: object, prefix: str = "") -> set[str]:
    """Every id of a parsed config: ``a``, ``a#b``, ``a#0#c`` ..."""
    ids: set[str] = set()
    children = config.items() if isinstance(config, dict) else enumerate(config) if isinstance(config, list) else ()
    for key, value in children:
        name = f"{prefix}{key}"
        ids.add(name)
        ids |= known_ids(value, name + "#")
    return ids


def _run_arguments() -> set[str]:
    from monai.bundle import ConfigWorkflow
    from monai.bundle.scripts import run

    names = set(inspect.signature(run).parameters) | set(inspect.signature(ConfigWorkflow.__init__).parameters)
    return names - {"self", "override"}


def check_override_names(options: Iterable[str], config: dict, config_files: Sequence[str] = ()) -> None:
    """Refuse any override that names no id of ``config`` (nor an argument of ``monai.bundle run``).

    A new key inside an existing component (``--inferer#sw_batch_size 4``) is accepted: its parent exists.
    """
    ids = known_ids(config)
    arguments = _run_arguments()
    for name in options:
        if name in arguments or name in ids:
            continue
        parent = name.rpartition("#")[0]
        if parent and parent in ids:
            continue
        closest = difflib.get_close_matches(name, sorted(ids | arguments), n=1, cutoff=0.6)
        hint = f"did you mean --{closest[0]}?" if closest else "see the bundle's configs for the options it takes."
        where = ", ".join(Path(f).name for f in config_files) or "the bundle's configs"
        raise DataError(f"Unknown option --{name}: no such id in {where}; {hint}")


def report_data_errors_last() -> None:
    """Install an excepthook that, after the usual traceback, repeats a data error's message as the last lines."""
    previous = sys.excepthook
    if getattr(previous, "monai_sam", False):
        return

    def hook(kind, error, trace):
        previous(kind, error, trace)
        cause = data_error_in(error)
        if cause is not None:
            print(f"\nmonai-sam could not run: {cause}", file=sys.stderr)

    hook.monai_sam = True
    sys.excepthook = hook


def guard_bundle_run(argv: Sequence[str] | None = None) -> bool:
    """Check the command line's override names and install :func:`report_data_errors_last`, when ``argv``
    (default ``sys.argv``) is a ``monai.bundle run`` command. Returns whether it was one."""
    argv = list(sys.argv if argv is None else argv)
    if not _is_bundle_run(argv):
        return False
    report_data_errors_last()
    from monai.bundle import ConfigParser

    options = _options(argv[2:])
    files = _config_files(options.get("config_file"))
    config = ConfigParser.load_config_files(files) if files else {}
    args_file = options.get("args_file")
    names = list(options)
    if args_file:
        names += list(ConfigParser.load_config_file(args_file))
    check_override_names(names, config, files)
    return True
