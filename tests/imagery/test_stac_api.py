"""StacApiSource against a stand-in STAC API on 127.0.0.1 replaying real Earth Search / PC responses.

pystac-client does the searching and GDAL's /vsicurl/ the COG reading, both over real HTTP.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from s3tr.errors import CatalogError, ImageryReadError, TransientError
from s3tr.imagery.local import LocalStacSource
from s3tr.imagery.stac_api import RetryPolicy, StacApiSource, is_transient
from tests.imagery.conftest import localise_item
from tests.imagery.standin import Request, Response, StandIn

ES = "stac_fixtures/earthsearch_v1_pystac_client_cassettes"
PC = "stac_fixtures/planetary_computer_pystac_client_cassette"
ES_ROOT = "https://earth-search.aws.element84.com"
FAST = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.05)


def rewrite(obj: Any, old: str, new: str) -> Any:
    return json.loads(json.dumps(obj).replace(old, new))


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn() as server:
        yield server


@pytest.fixture
def es_dir(realdata: Path) -> Path:
    path = realdata / ES
    if not path.is_dir():
        pytest.skip(f"{path} missing")
    return path


def serve_earth_search(standin: StandIn, es_dir: Path) -> str:
    """Landing page and collections of the real Earth Search v1, links pointed at the stand-in."""
    landing = rewrite(json.loads((es_dir / "es_v1_landing_page.json").read_text()), ES_ROOT, standin.url)
    collections = rewrite(json.loads((es_dir / "es_v1_collections.json").read_text()), ES_ROOT, standin.url)
    standin.route("GET", "/v1", lambda r: Response.json(landing))
    standin.route("GET", "/v1/collections", lambda r: Response.json(collections))
    return standin.url + "/v1"


def test_search_follows_real_next_tokens(standin: StandIn, es_dir: Path) -> None:
    url = serve_earth_search(standin, es_dir)
    pages = [
        rewrite(
            json.loads((es_dir / f"es_v1_search_cql2_cloud_le40_page{i}.response.json").read_text()),
            ES_ROOT,
            standin.url,
        )
        for i in (1, 2)
    ]
    page2_request = json.loads((es_dir / "es_v1_search_cql2_cloud_le40_page2.request.json").read_text())

    def search(req: Request) -> Response:
        body = req.json()
        if "next" not in body:
            return Response.json(pages[0])
        if body == page2_request:
            return Response.json(pages[1])
        return Response.json({"type": "FeatureCollection", "features": [], "links": []})

    standin.route("POST", "/v1/search", search)
    source = StacApiSource(url, collection="sentinel-2-l2a", retry=FAST)
    acqs = source.list_acquisitions()
    expected = sorted(
        (f["properties"]["datetime"], f["id"])
        for page in pages
        for f in page["features"]
        if f["collection"] == "sentinel-2-l2a"
    )
    assert len(expected) >= 4
    assert [a.id for a in acqs] == [i for _, i in expected]
    assert source.problems == []
    for acq in acqs:
        feature = next(f for p in pages for f in p["features"] if f["id"] == acq.id)
        assert acq.tile == feature["properties"]["grid:code"].removeprefix("MGRS-")
        assert acq.grid.resolution == 20.0 and acq.grid.shape == (5490, 5490)
    posts = standin.requests("/v1/search", "POST")
    assert json.loads(posts[0].body)["collections"] == ["sentinel-2-l2a"]
    assert json.loads(posts[1].body) == page2_request  # the real client sent the real token


def test_search_parameters_reach_the_api(standin: StandIn, es_dir: Path) -> None:
    url = serve_earth_search(standin, es_dir)
    page = rewrite(
        json.loads((es_dir / "es_v1_search_cql2_cloud_le40_page1.response.json").read_text()),
        ES_ROOT,
        standin.url,
    )
    page["links"] = [link for link in page["links"] if link["rel"] != "next"]
    standin.route("POST", "/v1/search", lambda r: Response.json(page))
    source = StacApiSource(url, query={"eo:cloud_cover": {"lt": 80}}, retry=FAST)
    acqs = source.list_acquisitions(
        tile="T20EPT", start="2025-07-31", end="2025-07-31", bbox=(-61, -62, -58, -59)
    )
    # the stand-in ignores the filters: the client-side filter keeps the 20EPT L2A item only
    assert [a.id for a in acqs] == ["S2B_20EPT_20250731_0_L2A"]
    body = json.loads(standin.requests("/v1/search", "POST")[0].body)
    assert body["query"] == {"eo:cloud_cover": {"lt": 80}, "grid:code": {"eq": "MGRS-20EPT"}}
    assert body["bbox"] == [-61, -62, -58, -59]
    assert body["datetime"].startswith("2025-07-31T00:00:00") and "2025-07-31T23:59:59" in body["datetime"]


def test_planetary_computer_response_without_scale_metadata(standin: StandIn, realdata: Path) -> None:
    pc = realdata / PC
    response = json.loads((pc / "pc_search_sentinel-2-l2a_2019-01-01.response.json").read_text())
    landing = {
        "type": "Catalog",
        "id": "pc",
        "description": "stand-in",
        "stac_version": "1.0.0",
        "conformsTo": [
            "https://api.stacspec.org/v1.0.0/core",
            "https://api.stacspec.org/v1.0.0/item-search",
            "https://api.stacspec.org/v1.0.0/item-search#query",
        ],
        "links": [{"rel": "search", "href": standin.url + "/api/stac/v1/search", "method": "POST"}],
    }
    standin.route("GET", "/api/stac/v1", lambda r: Response.json(landing))
    standin.route("POST", "/api/stac/v1/search", lambda r: Response.json(response))
    source = StacApiSource(standin.url + "/api/stac/v1", tile_query="s2:mgrs_tile", retry=FAST)
    acqs = source.list_acquisitions()
    assert len(acqs) == len(response["features"]) == 33
    assert {a.tile for a in acqs} == {f["properties"]["s2:mgrs_tile"] for f in response["features"]}
    from s3tr.imagery.base import find_asset, scale_offset

    for acq in acqs:
        _, asset, idx = find_asset(acq.item, "B04")
        so = scale_offset(acq.item, asset, idx)
        assert (so.rule, so.offset) == ("baseline", 0.0)  # baseline 02.12, nothing declared


# -- reading COGs over HTTP ------------------------------------------------------------------------


@pytest.fixture
def cog_api(standin: StandIn, es_dir: Path, decimated_item_dict, decimated_dir: Path) -> dict[str, Any]:
    """The real 29RKH Earth Search item served by the stand-in, COGs served with range requests,
    plus a second acquisition whose B8A file is missing (404)."""
    url = serve_earth_search(standin, es_dir)
    item = localise_item(decimated_item_dict, decimated_dir)
    for asset in item["assets"].values():
        name = Path(asset["href"]).name
        asset["href"] = standin.serve_file(f"/sentinel-cogs/29RKH/{name}", decimated_dir / name)
    broken = copy.deepcopy(item)
    broken["id"] = "S2A_29RKH_20200224_0_L2A"
    broken["properties"]["datetime"] = "2020-02-24T11:34:25.000Z"
    broken["assets"]["nir08"]["href"] = standin.url + "/sentinel-cogs/gone/B8A.tif"
    standin.route(
        "POST",
        "/v1/search",
        lambda r: Response.json({"type": "FeatureCollection", "features": [item, broken], "links": []}),
    )
    return {"url": url, "item": item}


def test_reads_cog_windows_over_http(
    cog_api, decimated_item_dict, decimated_dir: Path, tmp_path: Path, standin
):
    source = StacApiSource(cog_api["url"], retry=FAST)
    good, _ = source.list_acquisitions()
    local_item = tmp_path / "item.json"
    local_item.write_text(json.dumps(localise_item(decimated_item_dict, decimated_dir)))
    local = LocalStacSource(local_item)
    (local_acq,) = local.list_acquisitions()
    window = good.grid.window(300, 280, 40, 50)
    remote = source.read(good, ["B04", "B8A", "B11"], grid=window)
    expected = local.read(local_acq, ["B04", "B8A", "B11"], grid=window)
    np.testing.assert_array_equal(remote.values, expected.values)
    np.testing.assert_array_equal(source.read_scl(good, grid=window), local.read_scl(local_acq, grid=window))
    # only byte ranges were fetched: far less than the files
    b04 = standin.requests("/sentinel-cogs/29RKH/B04.tif", "GET")
    assert b04 and all(r.range for r in b04)
    assert sum(r.sent for r in b04) < (decimated_dir / "B04.tif").stat().st_size / 2


def test_404_fails_that_item_only(cog_api) -> None:
    source = StacApiSource(cog_api["url"], retry=FAST)
    good, broken = source.list_acquisitions()
    with pytest.raises(ImageryReadError) as info:
        source.read(broken, ["B04", "B8A"])
    text = str(info.value)
    assert broken.id in text and "nir08" in text and "/sentinel-cogs/gone/B8A.tif" in text and "404" in text
    assert "transient" not in text  # a 404 is not retried
    assert np.isfinite(source.read(good, ["B04", "B8A"]).values).mean() > 0.99


def test_transient_503_is_retried(cog_api, standin: StandIn) -> None:
    source = StacApiSource(cog_api["url"], retry=FAST)
    good, _ = source.list_acquisitions()
    path = "/sentinel-cogs/29RKH/B8A.tif"
    standin.fail(path, 503, 503)
    da = source.read(good, ["B8A"])
    statuses = [r.status for r in standin.requests(path)]
    assert statuses[:2] == [503, 503] and all(s in (200, 206) for s in statuses[2:]) and len(statuses) > 2
    assert np.isfinite(da.values).mean() > 0.99


def test_transient_errors_that_persist_fail_the_item(
    cog_api, standin: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="s3tr.imagery.stac_api")
    source = StacApiSource(cog_api["url"], retry=RetryPolicy(attempts=3, backoff=0.01))
    good, _ = source.list_acquisitions()
    standin.fail("/sentinel-cogs/29RKH/B11.tif", *([503] * 10))
    with pytest.raises(ImageryReadError, match="after 3 attempts") as info:
        source.read(good, ["B04", "B11"])
    assert "swir16" in str(info.value)
    assert caplog.text.count("retry in") == 2  # 3 attempts, 2 waits
    # each attempt reached the server (GDAL may send a HEAD and a GET per open)
    assert 3 <= len(standin.requests("/sentinel-cogs/29RKH/B11.tif")) <= 6
    assert isinstance(info.value.__cause__, TransientError)


def test_search_retries_then_gives_up(standin: StandIn, es_dir: Path) -> None:
    url = serve_earth_search(standin, es_dir)
    standin.route(
        "POST", "/v1/search", lambda r: Response.json({"type": "FeatureCollection", "features": []})
    )
    standin.fail("/v1/search", 503, 429)
    assert StacApiSource(url, retry=FAST).list_acquisitions() == []
    assert [r.status for r in standin.requests("/v1/search")] == [503, 429, 200]
    standin.fail("/v1/search", *([503] * 10))
    with pytest.raises(TransientError, match="try again later"):
        StacApiSource(url, retry=FAST).list_acquisitions()


def test_wrong_api_url_is_a_catalog_error(standin: StandIn) -> None:
    with pytest.raises(CatalogError, match="check the URL"):
        StacApiSource(standin.url + "/not-an-api", retry=FAST).list_acquisitions()


@pytest.mark.parametrize(
    ("message", "transient"),
    [
        ("HTTP response code: 503", True),
        ("HTTP response code: 429", True),
        ("HTTP response code: 404", False),
        ("HTTP response code: 403", False),
        ("Operation timed out after 30001 milliseconds", True),
        ("TIFFReadEncodedTile() failed", False),
    ],
)
def test_is_transient(message: str, transient: bool) -> None:
    assert is_transient(RuntimeError(message)) is transient
