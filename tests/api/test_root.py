"""The API root (/api/v1/) is a public map of the endpoints, as the endpoints it lists are."""

from rest_framework.test import APIClient


def test_anyone_may_read_the_api_root(db):
    response = APIClient().get("/api/v1/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    endpoints = response.json()
    assert endpoints["projects"].endswith("/api/v1/projects/")
    assert {"categories", "torch-targets", "runs", "applications"} <= set(endpoints)


def test_the_api_root_stays_read_only(db):
    assert APIClient().post("/api/v1/", {}, format="json").status_code == 405
