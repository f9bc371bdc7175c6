"""The ``s3tr`` command: parses options and calls library functions, nothing more."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from s3tr.errors import S3trError

app = typer.Typer(
    help="s3tr: CAP area monitoring of every declared parcel with Sentinel-2.", no_args_is_help=True
)
console = Console(stderr=True)
out = Console()

WorkdirOpt = Annotated[Path, typer.Option("--workdir", help="Working directory.", envvar="S3TR_WORKDIR")]
DEFAULT_WORKDIR = Path("s3tr-work")

log = logging.getLogger("s3tr")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, rich_tracebacks=False)],
    )


def _fail(exc: Exception, code: int = 1) -> typer.Exit:
    console.print(f"[bold red]error:[/] {exc}")
    return typer.Exit(code)


class _Bars:
    """A rich progress display fed by ``progress(stage, done, total)`` callbacks."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> _Bars:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total)
        self.progress.update(self.tasks[stage], completed=done, total=total)


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    _setup_logging(verbose)


@app.command()
def demo(
    workdir: WorkdirOpt = DEFAULT_WORKDIR,
    seed: Annotated[int, typer.Option(help="Seed of the generated demo season.")] = 0,
) -> None:
    """Generate the embedded demo season (if needed) and run the nightly pipeline on it."""
    from s3tr.demo.runner import run_demo

    t0 = time.perf_counter()
    try:
        with _Bars() as bars:
            outcome = run_demo(workdir, seed=seed, progress=bars)
    except S3trError as exc:
        raise _fail(exc) from exc
    _print_summary(outcome.summary, outcome.score)
    out.print(f"Run report: {outcome.report}")
    out.print(f"Flags table: {outcome.flags}")
    out.print(f"Done in {time.perf_counter() - t0:.1f} s.")
    if outcome.summary["failures"]:
        console.print(
            f"[yellow]{len(outcome.summary['failures'])} failures reported (see the run report).[/]"
        )


def _print_summary(summary: dict, score: dict | None) -> None:
    out.print(
        f"[bold]{summary['parcels']}[/] parcels ({summary['rejected_records']} records rejected), "
        f"[bold]{summary['acquisitions']}[/] acquisitions "
        f"({summary['acquisitions_new']} processed in this run)"
    )
    table = Table(title="Flags per control")
    for col in ("control", "green", "orange", "red"):
        table.add_column(col, justify="left" if col == "control" else "right")
    for control, row in summary["flags"].items():
        table.add_row(control, *(str(row.get(f, 0)) for f in ("green", "orange", "red")))
    out.print(table)
    if summary.get("cases"):
        out.print(
            "Review queue: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in summary["cases"].items())
        )
    if score:
        st = Table(title="Demo self-score against the hidden ground truth")
        for col in (
            "control",
            "parcels",
            "right",
            "wrong red",
            "missed red",
            "orange",
            "accuracy of green/red",
        ):
            st.add_column(col, justify="left" if col == "control" else "right")
        for control, s in score["controls"].items():
            acc = "–" if s["decided_accuracy"] is None else f"{s['decided_accuracy']:.3f}"
            st.add_row(
                control,
                *map(str, (s["parcels"], s["right"], s["wrong_red"], s["missed_red"], s["orange"])),
                acc,
            )
        out.print(st)
        for name, text in score["markers"].items():
            out.print(f"{name}: {text}")


@app.command()
def extract(
    parcels: Annotated[Path, typer.Option(help="Parcels file (any vector format, any CRS).")],
    raster: Annotated[Path, typer.Option(help="Single- or multi-band raster (bands = dates).")],
    out_path: Annotated[Path, typer.Option("--out", help="Output table, .csv or .parquet.")],
    id_column: Annotated[str, typer.Option(help="Parcel id column.")] = "id_parcel",
    scale: Annotated[float, typer.Option(help="Scale applied to valid values.")] = 1.0,
    offset: Annotated[float, typer.Option(help="Offset applied after scaling.")] = 0.0,
) -> None:
    """Per-parcel statistics (mean, std, count, valid fraction) of every band of a raster."""
    from s3tr.extract import extract_raster, write_table

    try:
        table = extract_raster(parcels, raster, id_column=id_column, scale=scale, offset=offset)
        write_table(table, out_path)
    except S3trError as exc:
        raise _fail(exc) from exc
    out.print(f"{table['parcel_id'].nunique()} parcels x {table['band'].nunique()} bands -> {out_path}")


def main() -> None:
    """Entry point of the ``s3tr`` console script."""
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
