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

from s3tr.api.commands import accounts_app
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


@app.command()
def nightly(
    config: Annotated[Path, typer.Option(help="Run configuration (YAML), e.g. pipelines/nightly.yaml.")],
    workdir: WorkdirOpt = DEFAULT_WORKDIR,
    db: Annotated[
        str | None, typer.Option("--db", help="Database URL (default: SQLite in the workdir).")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Only acquisitions from this date (YYYY-MM-DD).")] = None,
    only: Annotated[list[str] | None, typer.Option(help="Only this MGRS tile (repeatable).")] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(help="Dask scheduler address, e.g. tcp://HOST:8786 (default: a local cluster)."),
    ] = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Retry the items that failed in earlier runs.")
    ] = False,
) -> None:
    """Run the nightly pipeline: new acquisitions, markers, decisions, review queue, run report.

    Exit code 0 when everything succeeded, 3 when some items failed (partial run), 1 when the run failed.
    """
    from datetime import date

    from s3tr.nightly.config import load_run_config
    from s3tr.nightly.pipeline import load_crop_model, run_pipeline
    from s3tr.nightly.post import default_post_steps
    from s3tr.nightly.report import summarize, write_report

    try:
        since_date = date.fromisoformat(since) if since else None
    except ValueError as exc:
        raise typer.BadParameter(f"--since {since!r} is not a date YYYY-MM-DD") from exc
    try:
        cfg = load_run_config(config)
        with _Bars() as bars:
            result = run_pipeline(
                cfg,
                workdir=workdir,
                db_url=db,
                crop_model=load_crop_model(cfg.crop_model),
                progress=bars,
                only_tiles=tuple(only) if only else None,
                since=since_date,
                retry_failed=retry_failed,
                scheduler=scheduler or cfg.scheduler,
                post_steps=default_post_steps(cfg, scheduler=scheduler or cfg.scheduler),
            )
        report = write_report(result, Path(workdir) / "report.html")
    except S3trError as exc:
        raise _fail(exc) from exc
    _print_summary(summarize(result), None)
    out.print(f"Run {result.run_id}: {result.status}. Run report: {report}")
    if result.failures:
        console.print(f"[yellow]{len(result.failures)} items failed (see the run report); partial run.[/]")
        raise typer.Exit(3)


DbOpt = Annotated[str | None, typer.Option("--db", help="Database URL (default: SQLite in the workdir).")]

markers_app = typer.Typer(help="Run markers on a parcel time-series table.", no_args_is_help=True)
crop_app = typer.Typer(help="Crop-group classifier.", no_args_is_help=True)
evaluate_app = typer.Typer(help="Score markers against ground truth.", no_args_is_help=True)
cases_app = typer.Typer(help="The review queue.", no_args_is_help=True)
db_app = typer.Typer(help="The review database.", no_args_is_help=True)
qa_app = typer.Typer(help="Quality assessment of the monitoring.", no_args_is_help=True)
notify_app = typer.Typer(help="Notifications to farmers and instructors.", no_args_is_help=True)
markers_app.add_typer(crop_app, name="crop")
app.add_typer(markers_app, name="markers")
app.add_typer(evaluate_app, name="evaluate")
app.add_typer(cases_app, name="cases")
app.add_typer(db_app, name="db")
app.add_typer(qa_app, name="qa")
app.add_typer(notify_app, name="notify")
app.add_typer(accounts_app, name="accounts")

TsOpt = Annotated[Path, typer.Option("--timeseries", help="Time-series table (CSV or Parquet).")]


@markers_app.command("mowing")
def markers_mowing(
    timeseries: TsOpt,
    out_path: Annotated[Path, typer.Option("--out", help="Events table: parcel_id, start, end, confidence.")],
    season: Annotated[
        str,
        typer.Option(
            help="Season watched, START,END: month-days (MM-DD) are watched in every year a parcel's series "
            "covers; full dates (YYYY-MM-DD) once. Events touching it are kept."
        ),
    ] = "04-01,10-31",
) -> None:
    """Detect mowing events on grassland series."""
    from s3tr.markers import MowingParams, run_mowing
    from s3tr.markers.table import parse_season

    try:
        params = MowingParams(season=parse_season(season))
        events = run_mowing(timeseries, out_path, params=params)
    except S3trError as exc:
        raise _fail(exc) from exc
    statuses = ", ".join(f"{n} {status}" for status, n in sorted(events.attrs["status_counts"].items()))
    out.print(
        f"{len(events)} mowing events on {events['parcel_id'].nunique()} of {events.attrs['n_parcels']} "
        f"parcels ({statuses}) -> {out_path}"
    )


@crop_app.command("train")
def crop_train(
    timeseries: TsOpt,
    labels: Annotated[Path, typer.Option(help="Labels table: parcel_id, label.")],
    model: Annotated[Path, typer.Option(help="Where to write the model.")],
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    classifier: Annotated[
        str,
        typer.Option(
            help="stack (trees + random convolutions + kernel ridge, stacked: the more accurate), trees "
            "(calibrated extremely randomised trees: smaller, linear memory) or auto (the stack up to "
            "10,000 training rows)."
        ),
    ] = "auto",
) -> None:
    """Train a calibrated crop classifier."""
    from s3tr.markers import run_crop_train

    try:
        run_crop_train(timeseries, labels, model, seed=seed, classifier=classifier)
    except S3trError as exc:
        raise _fail(exc) from exc
    out.print(f"model written to {model}")


@crop_app.command("predict")
def crop_predict(
    timeseries: TsOpt,
    model: Annotated[Path, typer.Option(help="A model written by 'crop train'.")],
    out_path: Annotated[Path, typer.Option("--out", help="Predictions table.")],
) -> None:
    """Predict crop classes with calibrated probabilities and the second choice."""
    from s3tr.markers import run_crop_predict

    try:
        pred = run_crop_predict(timeseries, model, out_path)
    except S3trError as exc:
        raise _fail(exc) from exc
    out.print(f"{len(pred)} parcels predicted -> {out_path}")


@evaluate_app.command("mowing")
def evaluate_mowing_cmd(
    events: Annotated[Path, typer.Option(help="Detected events: parcel_id, start, end[, confidence].")],
    truth: Annotated[
        Path,
        typer.Option(help="True mowing dates: parcel_id, date (a row without a date: a parcel never mowed)."),
    ],
    timeseries: Annotated[
        Path | None,
        typer.Option(
            "--timeseries",
            help="Series table: its parcels absent from the truth were not mowed (needed for the season "
            "specificity unless the truth lists the never-mowed parcels).",
        ),
    ] = None,
    tolerance_days: Annotated[int, typer.Option(help="Matching tolerance around each interval.")] = 10,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the scores as JSON.")] = None,
) -> None:
    """Precision, recall and F1 of mowing events, and season-level balanced accuracy."""
    from s3tr.markers.evaluate import evaluate_mowing_files

    try:
        scores = evaluate_mowing_files(
            events, truth, timeseries=timeseries, tolerance_days=tolerance_days, json_out=json_out
        )
    except S3trError as exc:
        raise _fail(exc) from exc
    _print_scores(scores)


@evaluate_app.command("crop")
def evaluate_crop_cmd(
    predictions: Annotated[Path, typer.Option(help="Predictions from 'markers crop predict'.")],
    labels: Annotated[Path, typer.Option(help="Labels table: parcel_id, label.")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the scores as JSON.")] = None,
) -> None:
    """Accuracy, macro-F1, expected calibration error, coverage and precision at p >= 0.9."""
    from s3tr.markers.evaluate import evaluate_crop_files

    try:
        scores = evaluate_crop_files(predictions, labels, json_out=json_out)
    except S3trError as exc:
        raise _fail(exc) from exc
    _print_scores(scores)


def _print_scores(scores: dict) -> None:
    for key, value in scores.items():
        out.print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")


def _db_url(db: str | None, workdir: Path) -> str:
    from s3tr.review.database import db_url_for

    return db_url_for(workdir, db)


@db_app.command("upgrade")
def db_upgrade(db: DbOpt = None, workdir: WorkdirOpt = DEFAULT_WORKDIR) -> None:
    """Create or migrate the review database to the latest schema."""
    from s3tr.review.database import upgrade

    url = _db_url(db, workdir)
    try:
        if db is None:
            workdir.mkdir(parents=True, exist_ok=True)
        upgrade(url)
    except S3trError as exc:
        raise _fail(exc) from exc
    out.print("database at the latest revision")


@cases_app.command("list")
def cases_list(
    db: DbOpt = None,
    workdir: WorkdirOpt = DEFAULT_WORKDIR,
    state: Annotated[str | None, typer.Option(help="Only cases in this state.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """List the review cases, sorted by case id."""
    from s3tr.review.cases import list_cases
    from s3tr.review.database import make_engine

    if fmt not in ("table", "csv", "json"):
        raise typer.BadParameter("--format must be table, csv or json")
    engine = make_engine(_db_url(db, workdir))
    try:
        cases = list_cases(engine, state=state)
    except S3trError as exc:
        raise _fail(exc) from exc
    finally:
        engine.dispose()
    cases["reasons"] = cases["reasons"].map(lambda r: ";".join(r) if isinstance(r, list | tuple) else r)
    if fmt == "csv":
        sys.stdout.write(cases.to_csv(index=False))
    elif fmt == "json":
        sys.stdout.write(cases.to_json(orient="records", date_format="iso", force_ascii=False) + "\n")
    else:
        table = Table(title=f"{len(cases)} cases")
        for col in cases.columns:
            table.add_column(str(col))
        for row in cases.itertuples(index=False):
            table.add_row(*("" if v is None else str(v) for v in row))
        out.print(table)


@qa_app.command("sample")
def qa_sample_cmd(
    out_path: Annotated[Path, typer.Option("--out", help="Sample table (.csv or .parquet).")],
    seed: Annotated[
        int, typer.Option(help="Random seed: the same decisions and seed give the same sample.")
    ] = 0,
    db: DbOpt = None,
    workdir: WorkdirOpt = DEFAULT_WORKDIR,
    campaign: Annotated[int | None, typer.Option(help="Only this campaign.")] = None,
    per_control: Annotated[int, typer.Option(help="Parcels drawn per control at most.")] = 300,
    per_holding: Annotated[int, typer.Option(help="Parcels per holding (PACAGE) and control at most.")] = 3,
) -> None:
    """Draw the QA sample: up to 300 parcels per control, at most 3 per holding, reproducibly."""
    from s3tr.decide.qa import qa_sample
    from s3tr.extract import write_table
    from s3tr.review.cases import current_decisions
    from s3tr.review.database import make_engine

    engine = make_engine(_db_url(db, workdir))
    try:
        decisions = current_decisions(engine, campaign=campaign)
        sample = qa_sample(decisions, seed=seed, per_control=per_control, per_holding=per_holding)
        sample["reasons"] = sample["reasons"].map(";".join)
        write_table(sample, out_path)
    except S3trError as exc:
        raise _fail(exc) from exc
    finally:
        engine.dispose()
    counts = ", ".join(f"{c} {n}" for c, n in sample.groupby("control").size().items())
    out.print(f"{len(sample)} parcels sampled ({counts}) -> {out_path}")


@notify_app.command("run")
def notify_run(
    db: DbOpt = None,
    workdir: WorkdirOpt = DEFAULT_WORKDIR,
    max_messages: Annotated[
        int | None, typer.Option("--max-messages", min=1, help="Stop after this many deliveries.")
    ] = None,
) -> None:
    """Send the pending notifications (e-mail, push) with retries; add due reminders and digests."""
    from s3tr.notify.worker import deliver_pending
    from s3tr.review.database import make_engine
    from s3tr.review.migrate import check_schema
    from s3tr.settings import get_settings

    engine = make_engine(_db_url(db, workdir))
    try:
        check_schema(engine)
        summary = deliver_pending(engine, get_settings(), max_messages=max_messages)
    except S3trError as exc:
        raise _fail(exc) from exc
    finally:
        engine.dispose()
    out.print(", ".join(f"{k} {v}" for k, v in summary.as_dict().items()))


@app.command("serve")
def serve_cmd(
    workdir: WorkdirOpt = DEFAULT_WORKDIR,
    db: DbOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int | None, typer.Option(help="Server processes (default: one per CPU core).")] = None,
) -> None:
    """Serve the farmer and instructor API (and the photos stored in the workdir)."""
    from s3tr.api.commands import serve

    try:
        serve(workdir, db, host, port, workers=workers)
    except S3trError as exc:
        raise _fail(exc) from exc


def main() -> None:
    """Entry point of the ``s3tr`` console script."""
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
