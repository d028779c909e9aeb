"""``scripts/bench_floor.py``, run by hand, kept from rotting: each layer's server starts,
answers the two requests of W3 (and W5's token exchange) the way the load generator expects,
and the load generator measures it (a second of load, not a timed test: nothing here asserts
a speed)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
sys.path.insert(0, str(SCRIPTS))
import bench_floor  # noqa: E402
from benchkit import Server, free_port, stop  # noqa: E402


@pytest.fixture(params=bench_floor.LAYERS[:-1])
def layer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, int]]:
    server = bench_floor.start_layer(request.param, tmp_path, workers=1)
    try:
        yield request.param, server.issuer, server.proc.pid
    finally:
        stop(server.proc)


def test_each_layer_answers_what_the_load_generator_expects(
        layer: tuple[str, str, int]) -> None:
    name, issuer, _ = layer
    auth = ("floor", "floor-secret")
    token = httpx.post(f"{issuer}/token", data={"grant_type": "client_credentials"}, auth=auth)
    assert token.status_code == 200 and token.json()["token_type"] == "Bearer"
    answer = httpx.post(f"{issuer}/introspect", data={"token": "x"}, auth=auth)
    assert answer.status_code == 200 and answer.json()["active"] is True
    assert answer.headers["cache-control"] == "no-store"
    assert ("x-request-id" in answer.headers) == (name == "middleware")


def measure(server: Server, workload: str, concurrency: int) -> dict[str, Any]:
    """A second of the load generator against ``server``: its JSON report."""
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "bench_tokens.py"), *server.bench_args[workload],
         "--duration", "1", "--warmup", "0.2", "--concurrency", str(concurrency),
         "--cpu-pid", str(server.proc.pid), "--json"],
        capture_output=True, text=True, timeout=60)
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_the_load_generator_measures_a_layer(tmp_path: Path) -> None:
    server = bench_floor.start_layer("hypercorn-patched", tmp_path, workers=1)
    try:
        report = measure(server, "W3", concurrency=4)
    finally:
        stop(server.proc)
    assert report["errors_total"] == 0 and report["operations_completed"] > 0
    assert report["server"]["cpu_ms_per_op"] > 0


@pytest.mark.parametrize("name", ["hypercorn-patched", "rsa-signature", "middleware"])
def test_w5_layers_answer_a_saml_exchange_as_tessera_does(tmp_path: Path, name: str) -> None:
    server = bench_floor.start_layer(name, tmp_path, workers=1, workload="W5")
    try:
        report = measure(server, "W5", concurrency=2)
        answer = httpx.post(f"{server.issuer}/token", auth=("floor", "floor-secret"),
                            data={"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange"})
    finally:
        stop(server.proc)
    assert report["errors_total"] == 0 and report["operations_completed"] > 0
    body = answer.json()
    assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:saml2"
    assert len(answer.content) == len(bench_floor.SAML_OUT) > 5_000  # tessera's answer's size


def test_the_rsa_layer_signs_what_an_assertion_needs() -> None:
    sign = bench_floor.assertion_signer()
    assert len(sign()) == 256  # one RSA-2048 signature a request


def test_an_unknown_layer_is_refused() -> None:
    done = subprocess.run([sys.executable, str(SCRIPTS / "bench_floor.py"), "--layers",
                           "nginx", "--port", str(free_port())], capture_output=True, text=True)
    assert done.returncode == 2 and "--layers" in done.stderr


def test_each_workload_runs_its_own_layers_by_default() -> None:
    assert "rsa-signature" not in bench_floor.workload_layers("W3")
    assert bench_floor.workload_layers("W5") == list(bench_floor.LAYERS)


def test_the_rsa_layer_is_a_w5_layer() -> None:
    done = subprocess.run([sys.executable, str(SCRIPTS / "bench_floor.py"), "--layers",
                           "rsa-signature"], capture_output=True, text=True)
    assert done.returncode == 2 and "W5" in done.stderr
