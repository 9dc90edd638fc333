"""`vmimage` argument parsing: every command, options before or after the command,
case-insensitive choices, data disks, and where the connection settings come from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vmimage import cli
from vmimage.errors import UsageError

URL = "http://127.0.0.1:7071"


def parse(*argv: str):
    return cli.build_parser().parse_args(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["upload", "d.vhd"],
        ["status", "d.vhd"],
        ["list"],
        ["families"],
        ["show", "img"],
        ["latest", "Ubuntu 22.04"],
        ["rm", "img"],
        ["capture", "--service", "s", "--vm", "v", "--image", "i"],
        ["operation", "op-1"],
        ["vm", "add", "s", "v", "--state", "Stopped", "--os", "Linux", "--os-disk", "http://a/b/c"],
        ["vm", "list"],
        ["vm", "show", "s", "v"],
        ["vm", "rm", "s", "v"],
    ],
)
def test_every_command_parses_and_has_help(argv: list[str], capsys) -> None:
    args = parse(*argv)
    assert args.command == argv[0]
    assert cli.main([*argv[: 2 if argv[0] == "vm" else 1], "--help"]) == 0
    assert "usage: vmimage" in capsys.readouterr().out


def test_top_level_help_documents_the_exit_codes(capsys) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for line in ("0  success", "1  the service said no", "2  bad arguments", "3  the catalog"):
        assert line in out
    assert "4  gave up waiting" in out


def test_connection_options_go_before_or_after_the_command() -> None:
    before = parse("--json", "--url", "http://x:1", "-q", "list")
    after = parse("list", "--json", "--url", "http://x:1", "-q")
    for args in (before, after):
        assert (args.json, args.url, args.quiet) == (True, "http://x:1", True)
    # A subcommand does not reset what was given before its name.
    assert parse("--key", "k", "vm", "list").key == "k"
    assert parse("list").json is False


def test_choices_are_case_insensitive_and_canonical() -> None:
    args = parse("list", "--os", "linux", "--type", "vmimage", "--category", "USER")
    assert (args.os, args.type, args.category) == ("Linux", "VMImage", "User")
    assert parse("upload", "d.vhd", "--os-state", "specialized").os_state == "Specialized"


@pytest.mark.parametrize(
    "argv",
    [
        ["list", "--os", "beos"],
        ["list", "--top", "0"],
        ["upload", "d.vhd", "--timeout", "-1"],
        ["capture", "--service", "s", "--vm", "v"],  # no --image
        ["vm", "add", "s", "v", "--os", "Linux", "--os-disk", "u"],  # no --state
        [
            "vm",
            "add",
            "s",
            "v",
            "--state",
            "Stopped",
            "--os",
            "Linux",
            "--os-disk",
            "u",
            "--data-disk",
            "zero=http://a/b/c",
        ],
        ["nope"],
        [],
    ],
)
def test_usage_errors_exit_2_with_a_message(argv: list[str], capsys) -> None:
    assert cli.main(argv) == 2
    assert "vmimage" in capsys.readouterr().err


def test_data_disks_take_a_lun_an_optional_caching_and_a_url() -> None:
    args = parse(
        "vm",
        "add",
        "s",
        "v",
        "--state",
        "stopped",
        "--os",
        "windows",
        "--os-disk",
        "http://a/b/os",
        "--data-disk",
        "0=http://a/b/d0.vhd",
        "--data-disk",
        "3:readonly=http://a/b/d=3.vhd",
    )
    assert args.data_disk == [(0, None, "http://a/b/d0.vhd"), (3, "ReadOnly", "http://a/b/d=3.vhd")]
    assert (args.state, args.os) == ("Stopped", "Windows")


def test_settings_come_from_options_then_environment_then_defaults(monkeypatch) -> None:
    monkeypatch.setattr(cli, "local_key", lambda: None)
    args = cli.resolve(parse("list"), env={})
    assert (args.url, args.key, args.container) == (URL, None, "uploads")
    assert (args.storage_connection_string, args.account_url) == (None, None)

    env = {
        "VMIMAGE_URL": "https://cat.example/",
        "VMIMAGE_KEY": "env-key",
        "VMIMAGE_STORAGE_CONNECTION_STRING": "conn-env",
        "VMIMAGE_CONTAINER": "drop",
    }
    args = cli.resolve(parse("list"), env=env)
    assert (args.url, args.key, args.container) == ("https://cat.example", "env-key", "drop")
    assert args.storage_connection_string == "conn-env"

    args = cli.resolve(
        parse("list", "--url", URL, "--key", "opt", "--account-url", "https://a"), env
    )
    assert (args.url, args.key) == (URL, "opt")
    # An account URL on the command line wins over a connection string from the environment.
    assert (args.account_url, args.storage_connection_string) == ("https://a", None)


def test_both_storage_options_at_once_is_a_usage_error() -> None:
    args = parse(
        "upload", "d.vhd", "--storage-connection-string", "c", "--account-url", "https://a"
    )
    with pytest.raises(UsageError) as e:
        cli.resolve(args, env={})
    assert e.value.exit_code == 2


def test_the_local_key_file_is_read_only_for_a_local_url(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / ".local").mkdir()
    (tmp_path / ".local" / "funckeys.json").write_text(
        json.dumps({"masterKey": "m", "hostKeys": {"default": "local-host-key"}})
    )
    monkeypatch.chdir(tmp_path)
    assert cli.resolve(parse("list"), env={}).key == "local-host-key"
    assert cli.resolve(parse("list", "--url", "http://localhost:9"), env={}).key == "local-host-key"
    # Never sent to another host.
    assert cli.resolve(parse("list", "--url", "https://cat.example"), env={}).key is None
