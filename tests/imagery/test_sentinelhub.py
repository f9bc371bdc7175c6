"""SentinelHubSource against a stand-in Sentinel Hub on 127.0.0.1, driven by the real sentinelhub client.

OAuth token, Catalog, Process and Statistical endpoints. The Process endpoint answers with real
GeoTIFF bytes cut from the real 29RKH COGs (a TAR of two GeoTIFFs, as the service does for two
outputs); the Statistical endpoint replays the stored real responses.
"""

from __future__ import annotations

import base64
import io
import json
import re
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from pydantic import SecretStr
from rasterio.enums import Resampling
from rasterio.io import MemoryFile
from rasterio.transform import from_bounds
from rasterio.windows import from_bounds as window_from_bounds

from s3tr.errors import ConfigError, ImageryReadError
from s3tr.imagery.sentinelhub_source import SentinelHubConfig, SentinelHubSource
from tests.imagery.standin import Request, Response, StandIn

SH = "stac_fixtures/sentinelhub_py_statistical_api"
CLIENT_ID, CLIENT_SECRET = "s3tr-test-client", "very-secret-value"


def cut(path: Path, bbox: list[float], width: int, height: int) -> np.ndarray:
    """The stand-in's resampling: nearest-neighbour read of ``bbox`` at ``width`` x ``height``."""
    with rasterio.open(path) as ds:
        window = window_from_bounds(*bbox, transform=ds.transform)
        return ds.read(
            1,
            window=window,
            out_shape=(height, width),
            resampling=Resampling.nearest,
            boundless=True,
            fill_value=0,
        )


def geotiff(array: np.ndarray, bbox: list[float], epsg: int) -> bytes:
    height, width, count = array.shape
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": array.dtype.name,
        "crs": f"EPSG:{epsg}",
        "transform": from_bounds(*bbox, width, height),
    }
    with MemoryFile() as mem:
        with mem.open(**profile) as ds:
            ds.write(np.moveaxis(array, -1, 0))
        return mem.read()


class FakeSentinelHub:
    """Routes of the stand-in Sentinel Hub; records what the client sent."""

    def __init__(self, standin: StandIn, realdata: Path, decimated_dir: Path, item: dict[str, Any]) -> None:
        self.standin, self.decimated_dir = standin, decimated_dir
        self.sh_dir = realdata / SH
        self.item = item
        self.process_bodies: list[dict[str, Any]] = []
        self.stat_bodies: list[dict[str, Any]] = []
        self.tokens = 0
        self.flaky_left = 1
        self.lock = threading.Lock()
        self.parcels = gpd.read_file(self.sh_dir / "statapi_test.geojson")
        standin.route("POST", "/oauth/token", self.token)
        standin.route("POST", "/api/v1/catalog/1.0.0/search", self.catalog)
        standin.route("POST", "/api/v1/process", self.process)
        standin.route("POST", "/api/v1/statistics", self.statistics)

    def authorised(self, req: Request) -> bool:
        return req.headers.get("Authorization") == "Bearer token-123"

    def token(self, req: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(req.body.decode()).items()}
        auth = req.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            form.setdefault("client_id", cid)
            form.setdefault("client_secret", secret)
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return Response.json({"error": "invalid_client"}, 401)
        with self.lock:
            self.tokens += 1
        now = time.time()
        return Response.json(
            {
                "access_token": "token-123",
                "token_type": "Bearer",
                "expires_in": 3600,
                "expires_at": now + 3600,
            }
        )

    def catalog(self, req: Request) -> Response:
        if not self.authorised(req):
            return Response.json({"error": "unauthorized"}, 401)
        broken = {
            "type": "Feature",
            "stac_version": "1.0.0",
            "id": "no-proj",
            "geometry": None,
            "links": [],
            "assets": {},
            "properties": {"datetime": "2020-02-20T11:00:00Z"},
        }
        return Response.json(
            {
                "type": "FeatureCollection",
                "features": [self.item, broken],
                "links": [],
                "context": {"limit": 100, "returned": 2},
            }
        )

    def process(self, req: Request) -> Response:
        if not self.authorised(req):
            return Response.json({"error": "unauthorized"}, 401)
        body = req.json()
        self.process_bodies.append(body)
        bbox = body["input"]["bounds"]["bbox"]
        epsg = int(body["input"]["bounds"]["properties"]["crs"].rsplit("/", 1)[-1])
        width, height = body["output"]["width"], body["output"]["height"]
        names = re.search(r"bands: \[([^\]]*)\]", body["evalscript"]).group(1)
        names = [n.strip().strip('"') for n in names.split(",")]
        refl = [n for n in names if n not in ("SCL", "dataMask")]
        scl = cut(self.decimated_dir / "SCL.tif", bbox, width, height)
        stack = np.empty((height, width, len(refl)), dtype=np.float32)
        for i, name in enumerate(refl):
            dn = cut(self.decimated_dir / f"{name}.tif", bbox, width, height).astype(np.float32)
            stack[:, :, i] = np.where((dn == 0) | (scl == 0), np.nan, dn / 10000)
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as tar:
            for name, data in (
                ("bands.tif", geotiff(stack, bbox, epsg)),
                ("scl.tif", geotiff(scl[:, :, None], bbox, epsg)),
            ):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return Response(200, out.getvalue(), {"Content-Type": "application/x-tar"})

    def partial(self) -> dict[str, Any]:
        features = json.loads((self.sh_dir / "batch_stat_failed_results.json").read_text())
        return next(f for f in features if f["id"] == 5)["response"]

    def statistics(self, req: Request) -> Response:
        if not self.authorised(req):
            return Response.json({"error": "unauthorized"}, 401)
        body = req.json()
        self.stat_bodies.append(body)
        first = body["input"]["bounds"]["geometry"]["coordinates"][0][0]
        index = next(
            i for i, g in enumerate(self.parcels.geometry) if np.allclose(g.exterior.coords[0], first)
        )
        load = lambda name: json.loads((self.sh_dir / name).read_text())[0]  # noqa: E731
        if index == 0:
            return Response.json(load("normal_stat_result.json"))
        if index == 1:
            # a real Batch Statistical per-feature response: one interval failed, one computed
            partial = self.partial()
            failed = partial["data"][0]
            if body["aggregation"]["timeRange"] == failed["interval"]:  # the client's per-interval retry
                return Response.json({"data": [failed], "status": "OK"})
            return Response.json(partial)
        if index == 2:
            return Response.json(load("normal_stat_failed_result.json") | {"status": 400}, 400)
        with self.lock:
            flaky = self.flaky_left > 0
            self.flaky_left -= 1
        if flaky:
            return Response.json({"error": {"status": 503, "reason": "Service Unavailable"}}, 503)
        return Response.json(load("normal_stat_result.json"))


@pytest.fixture
def fake_sh(
    monkeypatch: pytest.MonkeyPatch, realdata: Path, decimated_dir: Path, decimated_item_dict
) -> Iterator[dict]:
    # requests-oauthlib refuses plain HTTP token endpoints; the stand-in is on the loopback only.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    item = json.loads(json.dumps(decimated_item_dict))
    item["properties"]["proj:bbox"] = [199980, 2690220, 309780, 2800020]  # as Sentinel Hub's catalog gives it
    with StandIn() as standin:
        fake = FakeSentinelHub(standin, realdata, decimated_dir, item)
        config = SentinelHubConfig(
            client_id=CLIENT_ID,
            client_secret=SecretStr(CLIENT_SECRET),
            base_url=standin.url,
            token_url=standin.url + "/oauth/token",
            download_sleep_s=0.01,
            max_threads=2,
        )
        yield {"standin": standin, "fake": fake, "config": config}


def test_lists_and_reads_through_process_api(fake_sh, decimated_dir: Path) -> None:
    source = SentinelHubSource(fake_sh["config"])
    acqs = source.list_acquisitions(start="2020-02-01", end="2020-02-28", bbox=(-12, 24, -10.8, 25.4))
    assert [a.id for a in acqs] == ["S2A_29RKH_20200219_0_L2A"]
    assert [p[0] for p in source.problems] == ["no-proj"]
    (acq,) = acqs
    assert acq.tile == "29RKH" and acq.grid.shape == (5490, 5490) and acq.grid.resolution == 20
    window = acq.grid.window(2000, 2500, 60, 80)
    da, scl = source.read_with_scl(acq, ["B04", "B8A", "B11"], grid=window)
    assert da.dims == ("band", "y", "x") and da.shape == (3, 60, 80) and da.dtype == np.float32
    bbox = list(window.bounds)
    for name in ("B04", "B8A", "B11"):
        dn = cut(decimated_dir / f"{name}.tif", bbox, 80, 60).astype(np.float64)
        np.testing.assert_allclose(da.sel(band=name).values, np.where(dn == 0, np.nan, dn / 10000), rtol=1e-6)
    np.testing.assert_array_equal(scl, cut(decimated_dir / "SCL.tif", bbox, 80, 60))
    # a 10 m band was asked: the request was for 10 m pixels, averaged here
    body = fake_sh["fake"].process_bodies[0]
    assert (body["output"]["width"], body["output"]["height"]) == (160, 120)
    assert body["input"]["bounds"]["properties"]["crs"].endswith("/32629")
    assert [r["identifier"] for r in body["output"]["responses"]] == ["bands", "scl"]
    # 20 m bands only: 20 m pixels asked
    source.read(acq, ["B8A"], grid=window)
    assert fake_sh["fake"].process_bodies[-1]["output"]["width"] == 80
    assert fake_sh["fake"].tokens == 1  # one token for every request


def test_process_errors_fail_that_acquisition(fake_sh) -> None:
    source = SentinelHubSource(fake_sh["config"])
    (acq,) = source.list_acquisitions(start="2020-02-19", end="2020-02-19", bbox=(-12, 24, -10.8, 25.4))
    window = acq.grid.window(0, 0, 10, 10)
    fake_sh["standin"].fail("/api/v1/process", 503, 503)
    assert source.read(acq, ["B8A"], grid=window).shape == (1, 10, 10)  # retried by sentinelhub
    fake_sh["standin"].fail("/api/v1/process", 400)
    with pytest.raises(ImageryReadError, match="S2A_29RKH_20200219_0_L2A") as info:
        source.read(acq, ["B8A"], grid=window)
    assert "HTTP 400" in str(info.value)


def test_server_side_statistics(fake_sh, realdata: Path) -> None:
    fake = fake_sh["fake"]
    parcels = fake.parcels.assign(id_parcel=[f"P{i}" for i in range(len(fake.parcels))])
    result = SentinelHubSource(fake_sh["config"]).statistics(
        parcels, start="2020-06-01", end="2020-06-30", indices=["ndvi"]
    )
    normal = json.loads((realdata / SH / "normal_stat_result.json").read_text())[0]["data"][0]
    partial = fake.partial()["data"]
    expected = {
        ("P0", normal["interval"]["from"][:10]): normal,
        ("P1", partial[1]["interval"]["from"][:10]): partial[1],
        ("P3", normal["interval"]["from"][:10]): normal,  # after one 503
    }
    table = result.table.set_index(["parcel_id", "date"])
    assert sorted(table.index) == sorted(expected)
    for key, entry in expected.items():
        stats = entry["outputs"]["ndvi"]["bands"]["B0"]["stats"]
        row = table.loc[key]
        assert row["index"] == "ndvi"
        assert row["mean"] == pytest.approx(stats["mean"])
        assert row["std"] == pytest.approx(stats["stDev"])
        assert row["count"] == stats["sampleCount"] - stats["noDataCount"]
        assert row["valid_fraction"] == pytest.approx(row["count"] / stats["sampleCount"])
    failures = {(pid, day): reason for pid, day, reason in result.failures}
    assert failures[("P1", partial[0]["interval"]["from"][:10])] == "Sentinel Hub error: EXECUTION_ERROR"
    assert "HTTP 400" in failures[("P2", "")] and "COMMON_BAD_PAYLOAD" in failures[("P2", "")]
    assert len(result.failures) == 2
    body = fake.stat_bodies[0]
    assert body["aggregation"]["aggregationInterval"] == {"of": "P1D"}
    assert (body["aggregation"]["resx"], body["aggregation"]["resy"]) == (20, 20)
    assert (
        "s.SCL == 9" in body["aggregation"]["evalscript"] and "dataMask" in body["aggregation"]["evalscript"]
    )
    assert body["input"]["bounds"]["properties"]["crs"].endswith("/32633")  # the parcels' CRS as given


def test_credentials_and_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "S3TR_SENTINELHUB_CLIENT_ID",
        "S3TR_SENTINELHUB_CLIENT_SECRET",
        "SH_CLIENT_ID",
        "SH_CLIENT_SECRET",
    ):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigError, match="credentials missing"):
        SentinelHubSource(SentinelHubConfig.from_settings()).sh_config  # noqa: B018
    monkeypatch.setenv("SH_CLIENT_ID", "from-sh-env")
    monkeypatch.setenv("SH_CLIENT_SECRET", "sh-secret")
    assert SentinelHubConfig.from_settings().client_id == "from-sh-env"
    monkeypatch.setenv("S3TR_SENTINELHUB_CLIENT_ID", "from-s3tr-env")
    monkeypatch.setenv("S3TR_SENTINELHUB_CLIENT_SECRET", "s3tr-secret")
    config = SentinelHubConfig.from_settings()
    assert config.client_id == "from-s3tr-env"
    assert config.client_secret.get_secret_value() == "s3tr-secret"
    assert SentinelHubConfig.from_settings(client_id="explicit").client_id == "explicit"
    source = SentinelHubSource(config)
    for text in (repr(config), str(config), repr(source)):
        assert "s3tr-secret" not in text
    assert source.sh_config.sh_client_secret == "s3tr-secret"
