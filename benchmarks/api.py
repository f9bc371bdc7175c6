"""Benchmark of the API on loopback with a real uvicorn server process; prints a table of figures.

Run: ``python benchmarks/api.py [--clients 50] [--listings 2000] [--uploads 100] [--workers N]
[--client raw|httpx] [--workdir DIR] [--src CHECKOUT] [--no-accel]``.

1. Prepares a tiny demo season (80 parcels) through the nightly pipeline (or starts from
   ``--workdir``); every run works on a fresh copy, so runs compare (photos stored by a run
   would grow the next run's listing). A farmer and an instructor get tokens; the instructor
   asks photos on 5 of the farmer's cases.
2. Starts ``s3tr.api.commands.serve`` in a child process on 127.0.0.1 (SQLite in the workdir),
   with ``--workers`` processes (default: one per core, as ``s3tr serve``). ``--src`` runs the
   server from another checkout and ``--no-accel`` hides uvloop and httptools from it: A/B
   runs of old and new code back to back, in the same conditions.
3. ``--clients`` concurrent clients, each on its own keep-alive connection (as phones would):
   (a) list the farmer's photo requests (``GET /api/v1/me/photo-requests``) ``--listings``
   times in all; (b) upload a 3 MB geotagged JPEG ``--uploads`` times in all (each a distinct
   file: a comment segment differs). The default load generator is a minimal HTTP/1.1 client
   on asyncio streams: it shares the 2 cores with the server, and httpx would spend about ten
   times more CPU per request than it (``--client httpx`` to compare).
4. Prints throughput (requests/s), p50/p90/p99 latency (ms), the CPU used by the server
   processes and by the generator itself (cores), the server's CPU time per request (which
   other load on the machine does not change, unlike latency), and how many requests the
   least and the most served connection got (each connection is pinned to one server
   process). Goal: p99 < 100 ms for the listing on 2 cores. The load average is printed: the
   machine may be shared, compare runs made back to back.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import ExifTags, Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def prepare(workdir: Path) -> Path:
    from s3tr.demo import generate_season
    from s3tr.demo.runner import demo_run_config
    from s3tr.nightly.pipeline import run_pipeline

    if (workdir / "s3tr.db").exists():
        return workdir
    root = workdir.parent / "season"
    if not root.exists():
        generate_season(
            root, seed=3, n_parcels=80, area_size_m=2000.0, start=date(2025, 4, 1), end=date(2025, 6, 30)
        )
    run_pipeline(demo_run_config(root, workers=1), workdir=workdir)
    return workdir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def big_jpeg(lon: float, lat: float, target_bytes: int = 3_000_000) -> bytes:
    """A geotagged JPEG of about ``target_bytes`` (noisy pixels compress badly, like a real photo)."""
    rng = np.random.default_rng(0)
    side = 1400
    while True:
        pixels = rng.integers(0, 256, size=(side, side, 3), dtype=np.uint8)
        exif = Image.Exif()
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
        gps[ExifTags.GPS.GPSLatitudeRef], gps[ExifTags.GPS.GPSLatitude] = (
            "N",
            (float(int(lat)), 0.0, (lat % 1) * 3600),
        )
        gps[ExifTags.GPS.GPSLongitudeRef], gps[ExifTags.GPS.GPSLongitude] = (
            "E",
            (
                float(int(lon)),
                0.0,
                (lon % 1) * 3600,
            ),
        )
        exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = datetime.now(UTC).strftime(
            "%Y:%m:%d %H:%M:%S"
        )
        buf = io.BytesIO()
        Image.fromarray(pixels, "RGB").save(buf, "JPEG", quality=80, exif=exif)
        if buf.tell() >= target_bytes * 0.95:
            return buf.getvalue()
        side = int(side * (target_bytes / buf.tell()) ** 0.5) + 16


def variant(jpeg: bytes, i: int) -> bytes:
    """The same picture with a distinct COM segment right after SOI (a distinct SHA-256)."""
    text = f"benchmark {i}".encode()
    com = b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text
    return jpeg[:2] + com + jpeg[2:]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class RawClient:
    """A minimal HTTP/1.1 keep-alive client over asyncio streams (one connection).

    The load generator shares the 2 cores with the server: httpx costs about 1 ms of CPU per
    request, which would measure the client. This one sends the request and reads the status
    line, the headers and exactly ``Content-Length`` (or every chunk) of the body, no more.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> RawClient:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if body:
            self.writer.write(body)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        fields = {}
        for line in header_lines:
            if ":" in line:
                k, v = line.split(":", 1)
                fields[k.strip().lower()] = v.strip()
        if "content-length" in fields:
            return status, await self.reader.readexactly(int(fields["content-length"]))
        if fields.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunks.append(await self.reader.readexactly(size + 2))
                if size == 0:
                    return status, b"".join(c[:-2] for c in chunks)
        raise RuntimeError(f"response without length: {head!r}")


def multipart(fields: dict[str, tuple[str, bytes, str]]) -> tuple[str, bytes]:
    """A multipart/form-data body (content type, bytes) of file fields."""
    boundary = f"s3trbench{time.time_ns()}"
    parts = []
    for name, (filename, data, ctype) in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {ctype}\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    return f"multipart/form-data; boundary={boundary}", b"".join(parts) + f"--{boundary}--\r\n".encode()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and all its descendants (alive ones)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def own_cpu_seconds() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run_load(
    base_url: str, clients: int, total: int, make_request, kind: str = "raw"
) -> tuple[float, list[float], dict[int, int]]:  # type: ignore[no-untyped-def]
    """``total`` requests from ``clients`` concurrent clients, each with its own connection.

    One connection per simulated client (as phones would): a single shared httpx client's
    connection pool degrades sharply with 50 concurrent connections and would measure httpx.
    Each client opens its keep-alive connection first; the clock starts when all are open.
    """
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    per_client: list[int] = []
    counter = iter(range(total))
    host, port = base_url.split("//", 1)[1].split(":")

    async def worker() -> None:
        if kind == "raw":
            client: Any = RawClient(host, int(port))
        else:
            client = httpx.AsyncClient(timeout=120.0)
        async with client:
            await make_request(client, -1)  # opens the connection (kept alive, not timed)
            await ready.wait()
            done = 0
            for i in counter:
                t0 = time.perf_counter()
                status = await make_request(client, i)
                latencies.append(time.perf_counter() - t0)
                statuses[status] = statuses.get(status, 0) + 1
                done += 1
            per_client.append(done)

    ready = asyncio.Event()
    t0 = 0.0

    async def start() -> None:
        nonlocal t0
        await asyncio.sleep(0.5)  # let every client connect
        t0 = time.perf_counter()
        ready.set()

    await asyncio.gather(start(), *(worker() for _ in range(clients)))
    # how evenly the server served the connections (each is pinned to one server process)
    statuses["per-client min/max"] = (min(per_client), max(per_client))  # type: ignore[assignment]
    return time.perf_counter() - t0, latencies, statuses


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--listings", type=int, default=2000)
    parser.add_argument("--uploads", type=int, default=100)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="server processes")
    parser.add_argument(
        "--client", choices=("raw", "httpx"), default="raw", help="load generator (default: raw asyncio)"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="prepared demo workdir to start from (copied each run)"
    )
    parser.add_argument(
        "--src", type=Path, default=ROOT, help="checkout whose s3tr package the server runs (A/B runs)"
    )
    parser.add_argument(
        "--no-accel", action="store_true", help="hide uvloop and httptools from the server (A/B runs)"
    )
    args = parser.parse_args()

    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from s3tr.api.views import outline_wgs84
    from s3tr.review.database import db_url_for, make_engine
    from s3tr.review.models import Case, Declaration
    from s3tr.review.users import create_user, issue_token

    tmp = Path(tempfile.mkdtemp(prefix="s3tr-api-bench-"))
    template = prepare(args.workdir or tmp / "template")
    # every run starts from the same database: photos stored by a run would grow the listing
    workdir = tmp / "work"
    shutil.copytree(template, workdir)
    engine = make_engine(db_url_for(workdir))
    with Session(engine) as s:
        case = s.scalars(select(Case).where(Case.state == "open").order_by(Case.case_id)).first()
        assert case is not None, "the demo produced no open case"
        pacage, department = case.pacage, case.department
        open_cases = s.scalars(
            select(Case).where(Case.pacage == pacage, Case.state == "open").order_by(Case.case_id).limit(5)
        ).all()
        decl = s.scalars(
            select(Declaration)
            .where(Declaration.id_parcel == case.id_parcel)
            .order_by(Declaration.version.desc())
        ).first()
        spot = outline_wgs84(decl).representative_point()  # type: ignore[union-attr]
    stamp = f"{time.time_ns()}"
    farmer = issue_token(engine, create_user(engine, f"bench-farmer-{stamp}", role="farmer", pacage=pacage))
    instr = issue_token(
        engine, create_user(engine, f"bench-instr-{stamp}", role="instructor", department=department)
    )
    engine.dispose()

    port = free_port()
    src = str(args.src.resolve())
    hide = "sys.modules['uvloop'] = sys.modules['httptools'] = None; " if args.no_accel else ""
    code = (
        f"import sys; {hide}sys.path.insert(0, {src!r}); from s3tr.api.commands import serve; "
        f"serve(workdir={str(workdir)!r}, host='127.0.0.1', port={port}, workers={args.workers}, "
        "log_level='warning')"
    )
    server = subprocess.Popen([sys.executable, "-c", code], cwd=tmp)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if (
                    httpx.get(base + "/api/v1/me", headers={"Authorization": f"Bearer {farmer}"}).status_code
                    == 200
                ):
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the server did not start")
            time.sleep(0.2)

        rids = []
        for c in open_cases:
            r = httpx.post(
                f"{base}/api/v1/cases/{c.case_id}/photo-requests",
                json={
                    "deadline": (date.today() + timedelta(days=14)).isoformat(),
                    "instructions": "benchmark",
                },
                headers={"Authorization": f"Bearer {instr}"},
            )
            r.raise_for_status()
            rids.append(r.json()["id"])
        auth = {"Authorization": f"Bearer {farmer}"}
        listing_path = "/api/v1/me/photo-requests"
        photo = big_jpeg(spot.x, spot.y)
        sizes: list[int] = []

        async def listing(client: Any, i: int) -> int:
            if isinstance(client, RawClient):
                status, body = await client.request("GET", listing_path, auth)
            else:
                resp = await client.get(base + listing_path, headers=auth)
                status, body = resp.status_code, resp.content
            sizes.append(len(body))
            return status

        async def upload(client: Any, i: int) -> int:
            if i < 0:  # the untimed first request only opens the connection
                return await listing(client, i)
            path = f"/api/v1/me/photo-requests/{rids[i % len(rids)]}/photos"
            headers = {**auth, "Idempotency-Key": f"bench-{stamp}-{i}"}
            if isinstance(client, RawClient):
                ctype, body = multipart({"file": ("p.jpg", variant(photo, i), "image/jpeg")})
                status, _ = await client.request("POST", path, {**headers, "Content-Type": ctype}, body)
                return status
            resp = await client.post(
                base + path, files={"file": ("p.jpg", variant(photo, i), "image/jpeg")}, headers=headers
            )
            return resp.status_code

        asyncio.run(run_load(base, 5, 50, listing, args.client))  # warm-up
        rows = []
        for name, total, fn in (
            ("list photo requests", args.listings, listing),
            (f"upload {len(photo) / 1e6:.1f} MB photo", args.uploads, upload),
        ):
            cpu_server0, cpu_client0 = cpu_seconds(server.pid), own_cpu_seconds()
            wall, lat, statuses = asyncio.run(run_load(base, args.clients, total, fn, args.client))
            cpu_server = (cpu_seconds(server.pid) - cpu_server0) / wall
            cpu_client = (own_cpu_seconds() - cpu_client0) / wall
            rows.append((name, total, wall, lat, statuses, cpu_server, cpu_client))
        print(
            f"load average: {os.getloadavg()}; cpus: {os.cpu_count()}; clients: {args.clients} "
            f"({args.client}); server workers: {args.workers}{' (no uvloop/httptools)' * args.no_accel}; "
            f"server code: {src}; "
            f"listing body: {statistics.median(sizes):.0f} bytes"
        )
        print(
            f"{'operation':28s} {'n':>6s} {'req/s':>8s} {'p50 ms':>8s} {'p90 ms':>8s} {'p99 ms':>8s} "
            f"{'srv cpu':>8s} {'gen cpu':>8s} {'srv ms/req':>10s}  statuses"
        )
        for name, total, wall, lat, statuses, cs, cc in rows:
            print(
                f"{name:28s} {total:6d} {total / wall:8.1f} {statistics.median(lat) * 1e3:8.1f} "
                f"{pct(lat, 90) * 1e3:8.1f} {pct(lat, 99) * 1e3:8.1f} {cs:8.2f} {cc:8.2f} "
                f"{cs * wall / total * 1e3:10.2f}  {statuses}"
            )
        p99 = pct(rows[0][3], 99) * 1e3
        print(
            f"listing p99 / goal (100 ms): {p99 / 100:.2f}  (cpu columns: cores used, 1.00 = one core; "
            "srv ms/req: server CPU time per request, which the machine's other load does not change)"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
