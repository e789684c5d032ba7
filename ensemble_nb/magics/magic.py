"""``%%ensemble`` (a run) and ``%ensemble list | config | latency | plan | help``.

Only IPython and traitlets are imported here (both already loaded by IPython); the core,
pydantic and the widgets are imported when a magic first needs them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand

from ensemble_nb.magics.config import HELP, Ensemble

if TYPE_CHECKING:
    from ensemble_nb.core.run import EnsembleRun
    from ensemble_nb.magics.parsing import MagicOptions



class RunInterrupted(KeyboardInterrupt):
    """A blocking run was interrupted and has been cancelled cleanly."""


@magics_class
class EnsembleMagics(Magics):
    def __init__(self, shell: Any, settings: Ensemble) -> None:
        super().__init__(shell)
        self.settings = settings
        self.last_options: MagicOptions | None = None

    # IPython's own {var}/$var expansion of the line would break quoted JSON in --system and
    # treat $ specially; the line gets the same {name} rule as the prompt instead.
    @no_var_expand
    @line_cell_magic
    def ensemble(self, line: str, cell: str | None = None) -> None:
        """Run an LLM ensemble on the cell body: %%ensemble [options]. See %ensemble help."""
        try:
            if cell is None:
                self._subcommand(line.strip())
            else:
                self._run(line, cell)
        except RunInterrupted as exc:
            # Still an interrupt (the cell fails, "Run all" stops), minus the runner's frames.
            raise exc.with_traceback(None) from None
        except Exception as exc:
            if _is_user_error(exc):
                # UsageError prints one line to stderr, no traceback, and fails the cell (so
                # "Run all" and papermill stop instead of reading a stale handle).
                raise UsageError(str(exc)) from None
            raise

    @property
    def _namespace(self) -> dict[str, Any]:
        assert self.shell is not None, "registered magics always have a shell"
        namespace: dict[str, Any] = self.shell.user_ns
        return namespace

    # -- subcommands -----------------------------------------------------------------------
    def _subcommand(self, line: str) -> None:
        command, _, rest = line.partition(" ")
        if command in ("", "help", "-h", "--help"):
            print(HELP, end="")
        elif command == "list" and not rest.strip():
            from ensemble_nb.magics.listing import model_table

            print(model_table(self.settings), end="")
        elif command == "config" and not rest.strip():
            from ensemble_nb.magics.listing import config_table

            print(config_table(self.settings, _blocking_reason(self.shell, self.settings.block)), end="")
        elif command == "latency" and not rest.strip():
            self._latency()
        elif command == "plan":
            self._plan(rest)
        else:
            raise _options_error(f"unknown subcommand {line!r}: use %ensemble list, config, latency, plan or "
                                 "help; a run is a cell: %%ensemble [options] above the prompt")

    def _latency(self) -> None:
        from ensemble_nb.core.orchestrator import latency_plot_data, latency_table

        print(latency_table())
        if getattr(self.shell, "kernel", None) is None:
            return  # terminal IPython: the table is all there is
        rows = latency_plot_data()
        if not rows:
            return
        try:
            from ensemble_nb.widgets.latency_plot import latency_figure
        except ImportError as exc:
            print(f"note: no latency plot ({exc})", file=sys.stderr)
            return
        from IPython.display import display as untyped_display

        display = cast(Callable[[Any], None], untyped_display)
        display(latency_figure(rows))

    def _plan(self, rest: str) -> None:
        """``%ensemble plan "PROMPT" [run options]``: what a run would do now; no model is called."""
        import shlex

        from ensemble_nb.core.orchestrator import explain_plan
        from ensemble_nb.magics.parsing import fill_template, flag, parse_options

        usage = 'usage: %ensemble plan "PROMPT" [--models IDS] [--budget B] [other run options]'
        try:
            tokens = shlex.split(rest)
        except ValueError as exc:
            raise _options_error(f"cannot read the plan line ({exc}): check the quotes") from None
        if not tokens or tokens[0].startswith("--"):
            raise _options_error(f"{usage} (the prompt comes first, quoted)")
        namespace = self._namespace
        prompt = fill_template(tokens[0], namespace).strip()
        if not prompt:
            raise _options_error(f"the prompt is empty: {usage}")
        options = parse_options(shlex.join(tokens[1:]), namespace)
        for name in ("rag", "out", "block", "quiet"):
            if getattr(options, name) is not None:
                raise _options_error(f"{flag(name)} does not apply to %ensemble plan: {usage}")
        print(explain_plan(prompt, **_validated_run_options(self.settings, options)))

    # -- a run -----------------------------------------------------------------------------
    def _run(self, line: str, cell: str) -> None:
        from ensemble_nb.magics.parsing import fill_template, parse_options

        namespace = self._namespace
        options = parse_options(line, namespace)
        self.last_options = options
        prompt = fill_template(cell, namespace).strip()
        if not prompt:
            raise _options_error("the cell is empty: write the prompt on the lines below %%ensemble")
        run_kwargs = _validated_run_options(self.settings, options)
        if options.rag is not None:
            # A name in the namespace (a list of strings, a DataFrame column) wins over a path.
            run_kwargs["rag"] = namespace.get(options.rag, options.rag)

        from ensemble_nb.core.api import prepare

        run = prepare(prompt, **run_kwargs)
        out = options.out or self.settings.out
        quiet = options.quiet if options.quiet is not None else self.settings.quiet
        block = options.block if options.block is not None else self.settings.block
        namespace[out] = run  # before it runs: an interrupted run's partial result stays reachable
        namespace.pop(f"{out}_view", None)  # a previous run's view must not pass for this one's
        if _blocking_reason(self.shell, block) is None:
            self._run_in_background(run, out)
        else:
            self._run_blocking(run, out, quiet)

    def _run_in_background(self, run: EnsembleRun, out: str) -> None:
        from ensemble_nb.magics.execution import start_in_background

        view = self._show_view(run, out)
        if view is None:  # no widgets: stream text into this cell's output instead
            from ensemble_nb.textview import TextRenderer

            run.add_listener(TextRenderer())
        start_in_background(run)

    def _run_blocking(self, run: EnsembleRun, out: str, quiet: bool) -> None:
        from ensemble_nb.magics.execution import run_blocking
        from ensemble_nb.textview import TextRenderer

        try:
            run_blocking(run, TextRenderer(stream_tokens=not quiet))
        except KeyboardInterrupt:
            raise RunInterrupted(f"the run was cancelled; what it produced is in {out}") from None
        if getattr(self.shell, "kernel", None) is not None:
            self._show_view(run, out)

    def _show_view(self, run: EnsembleRun, out: str) -> Any:
        """Display the run's widget view (kept in ``{out}_view``); ``None`` if widgets are missing."""
        try:
            from ensemble_nb.widgets import EnsembleView
        except ImportError as exc:
            print(f"note: no live view ({exc}); showing the run as text", file=sys.stderr)
            return None
        from IPython.display import display as untyped_display

        display = cast(Callable[[Any], None], untyped_display)
        view = EnsembleView(run)
        self._namespace[f"{out}_view"] = view
        display(view)
        return view


def _blocking_reason(shell: Any, block: bool | None) -> str | None:
    from ensemble_nb.magics.execution import blocking_reason

    return blocking_reason(shell, block)


def _validated_run_options(settings: Ensemble, options: MagicOptions) -> dict[str, Any]:
    """Config under flags, checked against the core's RunOptions so that a bad value is named
    by where it came from (``--budget`` or ``Ensemble.budget``)."""
    from pydantic import ValidationError

    from ensemble_nb.core.options import RunOptions
    from ensemble_nb.magics.parsing import describe, flag

    from_flags = options.run_settings()
    merged = {**settings.run_settings(), **from_flags}
    if merged.get("timeout") == 0:
        merged["timeout"] = None  # 0 is how a flag or config says "no limit"
    try:
        RunOptions(**merged)
    except ValidationError as exc:
        def where(name: str) -> str:
            return flag(name) if name in from_flags else f"Ensemble.{name}"

        raise _options_error(describe(exc, where)) from None
    return merged


def _options_error(message: str) -> Exception:
    from ensemble_nb.magics.parsing import OptionsError

    return OptionsError(message)


def _is_user_error(exc: Exception) -> bool:
    # Looked up, not imported: if the core's UserError was raised, its module is loaded, and
    # classifying an error must not pull in the core.
    parsing = sys.modules.get("ensemble_nb.magics.parsing")
    errors = sys.modules.get("ensemble_nb.core.errors")
    return (parsing is not None and isinstance(exc, parsing.OptionsError)) or (
        errors is not None and isinstance(exc, errors.UserError))
