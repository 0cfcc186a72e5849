"""/decisions, /decisions/timeline and /decisions/{id} over the real index."""

from __future__ import annotations

import pytest
from service_fixtures import app_client  # noqa: F401
from service_fixtures import assert_readable_422

pytestmark = pytest.mark.model


def decisions(client, **params):
    r = client.get("/decisions", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_cancer_screening_decision(app_client):
    first = decisions(app_client, q="cancer screening")["decisions"][0]
    assert first["kind"] == "decision"
    assert first["meeting_date"] == "2018-03-08"
    assert first["parts"] == 5
    for n in range(1, 6):
        assert f"{n}." in first["text"], first["text"]
    assert "reporting cycle" in first["text"] and "recovery plan" in first["text"]


def test_contracting_intentions_decision(app_client):
    found = decisions(app_client, q="contracting intentions")["decisions"]
    assert any(d["kind"] == "decision" and d["meeting_date"] == "2014-11-20"
               and d["council"] == "City of Westminster" for d in found)


def test_kinds_are_not_mixed_up(app_client):
    everything = decisions(app_client, limit=500)
    assert everything["total"] == len(everything["decisions"]) > 0
    for d in everything["decisions"]:
        text = d["text"].lstrip("*# ")
        if d["kind"] == "recommendation":
            assert not text.startswith("It was RESOLVED"), d["id"]
            assert "RESOLVED" not in d["text"], d["id"]
        else:
            assert d["kind"] == "decision"
            assert not text.startswith("Recommendations"), d["id"]


def test_kind_filter(app_client):
    recs = decisions(app_client, kind="recommendation", limit=500)["decisions"]
    assert recs and all(d["kind"] == "recommendation" for d in recs)


def test_council_filter(app_client):
    found = decisions(app_client, council="City of Westminster", limit=500)["decisions"]
    assert found and all(d["council"] == "City of Westminster" for d in found)


def test_date_window_filter(app_client):
    found = decisions(app_client, date_from="2018-01-01", date_to="2018-12-31", limit=500)["decisions"]
    assert found
    assert all("2018-01-01" <= d["meeting_date"] <= "2018-12-31" for d in found)


def test_a_year_or_month_is_a_date_window(app_client):
    """"2018" and "2018-03" read as the whole year or month, the way an officer types them."""
    year = decisions(app_client, date_from="2018", date_to="2018", limit=500)["decisions"]
    assert [d["id"] for d in year] == [d["id"] for d in decisions(
        app_client, date_from="2018-01-01", date_to="2018-12-31", limit=500)["decisions"]]
    march = decisions(app_client, date_from="2018-03", date_to="2018-03", limit=500)["decisions"]
    assert march and all(d["meeting_date"].startswith("2018-03") for d in march)


def test_newest_first_without_q(app_client):
    dates = [d["meeting_date"] or "" for d in decisions(app_client, limit=500)["decisions"]]
    assert dates == sorted(dates, reverse=True)


def test_paging_consistent(app_client):
    whole = decisions(app_client, limit=500)
    total = whole["total"]
    assert total >= 3
    ids = [d["id"] for d in whole["decisions"]]
    paged = []
    for offset in range(0, total, 7):
        page = decisions(app_client, limit=7, offset=offset)
        assert page["total"] == total
        paged += [d["id"] for d in page["decisions"]]
    assert paged == ids
    assert decisions(app_client, offset=total)["decisions"] == []


@pytest.mark.parametrize("params", [{"limit": 501}, {"limit": 0}, {"offset": -1}, {"kind": "vote"},
                                    {"date_from": "2019-01-01", "date_to": "2018-01-01"},
                                    {"date_to": "0"}, {"date_from": "2018-13"}, {"date_from": "2019", "date_to": "2018"}])
def test_bad_params_422(app_client, params):
    assert_readable_422(app_client.get("/decisions", params=params))


def test_timeline_dates_non_decreasing(app_client):
    r = app_client.get("/decisions/timeline", params={"q": "screening"})
    assert r.status_code == 200
    body = r.json()
    assert body["query"] == "screening"
    dates = [d["meeting_date"] or "" for d in body["decisions"]]
    assert dates and dates == sorted(dates)


def test_decision_detail(app_client):
    first = decisions(app_client, q="cancer screening")["decisions"][0]
    r = app_client.get(f"/decisions/{first['id']}")
    assert r.status_code == 200
    d = r.json()
    assert d["id"] == first["id"]
    assert d["text"].strip()[:80] in d["discussion"]
    assert d["discussion_start"] <= d["citation"]["char_start"] and d["citation"]["char_end"] <= d["discussion_end"]
    assert isinstance(d["attendance"], list) and d["attendance"]


def test_unknown_decision_404(app_client):
    r = app_client.get("/decisions/no-such-decision")
    assert r.status_code == 404
    assert "no-such-decision" in r.json()["detail"]
