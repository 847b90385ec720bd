"""Deployment behind a proxy (DESIGN §5): X-Forwarded-For is believed only from SIA_TRUSTED_PROXIES, and the
e.firma limit counts per IP and RFC, so one client behind a shared IP cannot exhaust it for everyone."""

import datetime as dt
from pathlib import Path

import pytest
import time_machine
from pydantic import ValidationError

from app.settings import Settings
from tests.identity_helpers import Efirma, prove

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)  # EKU9003173C9's FIEL is valid until 2027-05-17
LIMIT = 20  # SIA_RATE_LIMIT_EFIRMA's default, per minute
ATTACKER_RFC, VICTIM_RFC = "GODE561231GR8", "EKU9003173C9"


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=True):
        yield


@pytest.fixture
def eku(sat: Path) -> Efirma:
    return Efirma.from_files("EKU9003173C9", sat / "EKU9003173C9_fiel.cer", sat / "EKU9003173C9_fiel.key")


@pytest.fixture
def trusted_proxies() -> list[str]:
    """No proxy trusted; a test parametrizes this name to trust some."""
    return []


@pytest.fixture
def app_settings(settings, trusted_proxies, tmp_path):
    return settings.model_copy(update={"data_dir": tmp_path, "trusted_proxies": trusted_proxies})


async def _reto(client, rfc: str, forwarded_for: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return (await client.post("/v1/efirma/retos", json={"rfc": rfc}, headers=headers)).status_code


async def _exhaust(client, rfc: str, forwarded_for: str | None = None) -> None:
    answers = [await _reto(client, rfc, forwarded_for) for _ in range(LIMIT + 1)]
    assert answers == [201] * LIMIT + [429], answers


async def test_one_client_behind_a_shared_ip_does_not_stop_another_rfc(client, eku, app_settings):
    # Everyone arrives from the proxy's address (127.0.0.1 here) and no proxy is trusted. Before, the limit was
    # per IP only: one stranger's 20 requests locked every e.firma holder behind that proxy out.
    await _exhaust(client, ATTACKER_RFC)
    assert await _reto(client, VICTIM_RFC) == 201
    proof = await prove(client, eku)
    issued = await client.post("/v1/contrasenas", json={**proof, "correo": "nomina@example.com"})
    assert issued.status_code == 201, issued.text


async def test_x_forwarded_for_is_ignored_unless_the_proxy_is_trusted(client):
    # A client cannot escape the limit by inventing addresses when no proxy is configured.
    answers = [await _reto(client, ATTACKER_RFC, f"198.51.100.{i}") for i in range(LIMIT + 1)]
    assert answers[-1] == 429


@pytest.mark.parametrize("trusted_proxies", [["127.0.0.1"]])
async def test_behind_a_trusted_proxy_each_client_has_its_own_quota(client):
    # The proxy (127.0.0.1) appends the address it saw. Before, X-Forwarded-For was never read, so two
    # clients behind it shared one quota for the same RFC.
    await _exhaust(client, VICTIM_RFC, "203.0.113.7")
    assert await _reto(client, VICTIM_RFC, "198.51.100.9") == 201


@pytest.mark.parametrize("trusted_proxies", [["127.0.0.1"]])
async def test_a_client_cannot_choose_its_address_through_a_trusted_proxy(client):
    # The attacker sends its own X-Forwarded-For, different each time; the proxy appends the real address.
    # Only the rightmost untrusted entry counts, so the invented ones change nothing.
    answers = [await _reto(client, ATTACKER_RFC, f"10.9.8.{i}, 203.0.113.7") for i in range(LIMIT + 1)]
    assert answers[-1] == 429, answers


@pytest.mark.parametrize("trusted_proxies", [["10.0.0.0/8"]])
async def test_a_request_not_from_a_trusted_proxy_keeps_its_peer_address(client):
    # The peer (127.0.0.1) is outside 10.0.0.0/8: its X-Forwarded-For is a claim, not a fact.
    answers = [await _reto(client, ATTACKER_RFC, f"198.51.100.{i}") for i in range(LIMIT + 1)]
    assert answers[-1] == 429


def test_trusted_proxies_come_from_a_comma_separated_setting(monkeypatch):
    monkeypatch.setenv("SIA_TRUSTED_PROXIES", "10.0.0.1, 192.168.0.0/16,::1")
    assert Settings().trusted_proxies == ["10.0.0.1", "192.168.0.0/16", "::1"]
    monkeypatch.delenv("SIA_TRUSTED_PROXIES")
    assert Settings().trusted_proxies == []


@pytest.mark.parametrize("value", ["*", "proxy.internal", "10.0.0.300"])
def test_trust_in_everyone_or_a_mistyped_proxy_is_refused(monkeypatch, value):
    # "*" would let any client pick its own IP; a typo would silently trust nobody.
    monkeypatch.setenv("SIA_TRUSTED_PROXIES", value)
    with pytest.raises(ValidationError, match="SIA_TRUSTED_PROXIES"):
        Settings()
