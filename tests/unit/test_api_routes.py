"""The HTTP face has one way to add a route: a function on a router that serving.api.app includes."""
from __future__ import annotations

from fastapi.routing import APIRoute

from serving.api.app import ROUTERS
from serving.api.direct import DirectRoutes, direct_routes


def test_the_hot_scoring_routes_are_served_direct_and_nothing_else_is():
    assert set(direct_routes(ROUTERS)) == {("POST", "/score"), ("POST", "/rank")}
    DirectRoutes(app=None, routers=ROUTERS)  # finds them (it refuses to start with none)


def test_every_route_of_the_app_comes_from_a_router_it_lists():
    declared = {(route.path, frozenset(route.methods)) for router in ROUTERS for route in router.routes
                if isinstance(route, APIRoute)}
    paths = {path for path, _ in declared}
    assert {"/score", "/rank", "/predict/fraud", "/penalty", "/reports", "/queue", "/events", "/models"} <= paths
    assert len(declared) == sum(len(router.routes) for router in ROUTERS)  # no path declared twice
