"""`make run`'s ports: read from PORT and AZURITE_*, and everything it prints fits them."""

from __future__ import annotations

import pytest

from devtools.azurite import connection_string
from devtools.run import PortError, Ports, banner, ports_from


def test_no_settings_or_empty_ones_mean_the_defaults() -> None:
    assert ports_from({}) == Ports(7071, 10000, 10001, 10002)
    # The Makefile passes every variable, empty when not given on the command line.
    empty = dict.fromkeys(
        ["PORT", "AZURITE_PORT_BASE", "AZURITE_BLOB_PORT", "AZURITE_QUEUE_PORT",
         "AZURITE_TABLE_PORT"], "",
    )  # fmt: skip
    assert ports_from(empty) == Ports(7071, 10000, 10001, 10002)
    assert ports_from(empty).default_azurite


def test_a_base_puts_the_three_services_in_a_row_and_single_ports_win() -> None:
    assert ports_from({"PORT": "7081", "AZURITE_PORT_BASE": "20000"}) == Ports(
        7081, 20000, 20001, 20002, https=7082
    )
    assert ports_from({"HTTPS_PORT": "8443"}) == Ports(https=8443)
    env = {"AZURITE_PORT_BASE": "20000", "AZURITE_QUEUE_PORT": " 30001 "}
    assert ports_from(env) == Ports(7071, 20000, 30001, 20002)
    assert not ports_from(env).default_azurite


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"PORT": "abc"}, "PORT='abc' is not a port number"),
        ({"AZURITE_BLOB_PORT": "70000"}, "AZURITE_BLOB_PORT=70000"),
        ({"PORT": "0"}, "PORT=0"),
        ({"AZURITE_PORT_BASE": "65534"}, "no room for 3 ports"),
        ({"PORT": "10001"}, "5 different ports"),
        ({"AZURITE_PORT_BASE": "20000", "AZURITE_TABLE_PORT": "20000"}, "5 different ports"),
        ({"HTTPS_PORT": "7071"}, "5 different ports"),
        ({"PORT": "10000"}, "5 different ports"),
        ({"PORT": "65535"}, "no room for HTTPS_PORT"),
    ],
)
def test_bad_ports_are_refused_with_the_setting_named(env: dict[str, str], says: str) -> None:
    with pytest.raises(PortError, match=says.replace("(", r"\(")):
        ports_from(env)


def test_the_banner_at_the_default_ports_offers_development_storage() -> None:
    ports = Ports()
    text = banner(ports, connection_string(10000, 10001, 10002), 1.0)
    assert "http://127.0.0.1:7071/api/health" in text
    assert "https://127.0.0.1:7072 " in text and ".local/tls/ca.crt" in text
    assert "http://127.0.0.1:10000/devstoreaccount1/vhds/" in text
    assert "UseDevelopmentStorage=true" in text
    assert "VMIMAGE_" not in text  # vmimage's defaults are right


def test_the_banner_at_other_ports_gives_every_url_and_setting_for_them() -> None:
    ports = ports_from({"PORT": "7081", "AZURITE_PORT_BASE": "20000"})
    conn = connection_string(20000, 20001, 20002)
    text = banner(ports, conn, 1.0)
    assert "UseDevelopmentStorage" not in text  # it would reach the default ports
    assert conn in text
    assert "export VMIMAGE_URL=http://127.0.0.1:7081 " in text
    assert f"VMIMAGE_STORAGE_CONNECTION_STRING='{conn}'" in text
    assert "http://127.0.0.1:20000/devstoreaccount1/vhds/" in text
    assert ":7071" not in text and ":10000" not in text and ":7072" not in text
    assert "https://127.0.0.1:7082 " in text


def test_the_banner_says_how_to_call_the_classic_api() -> None:
    text = banner(Ports(), connection_string(10000, 10001, 10002), 1.0)
    sub = "6d1a4c2e-9b3f-4e57-8a10-3c5f7e9d2b41"
    assert f"subscription {sub}" in text
    assert (
        f'-H "x-ms-version: 2014-10-01" -H "x-functions-key: $KEY" http://127.0.0.1:7071/{sub}/'
        in text
    )
    assert "--cacert .local/tls/ca.crt --cert vmimage.pem" in text
    assert f"https://127.0.0.1:7072/{sub}/services/vmimages" in text
    assert "vmimage publishsettings   #" in text  # its default URL is right for these ports
    other = banner(ports_from({"HTTPS_PORT": "9443"}), connection_string(10000, 10001, 10002), 1.0)
    assert "publishsettings --management-url https://127.0.0.1:9443" in other
