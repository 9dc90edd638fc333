"""Function keys of the local runner (funcrunner.keys.KeyStore) and who they let in."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from funcrunner.keys import KeyStore


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys" / "funckeys.json", ["one", "two"])


def test_first_start_creates_the_keys_file(store: KeyStore) -> None:
    doc = json.loads(store.path.read_text())
    assert doc["masterKey"] == store.master_key
    assert doc["hostKeys"] == {"default": store.host_key}
    assert set(doc["functionKeys"]) == {"one", "two"}
    keys = [store.master_key, store.host_key, store.function_key("one"), store.function_key("two")]
    assert len(set(keys)) == 4
    assert all(len(k) >= 40 for k in keys)


def test_keys_file_is_private(store: KeyStore) -> None:
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_keys_are_reused_after_a_restart(store: KeyStore) -> None:
    again = KeyStore(store.path, ["one", "two"])
    assert again.doc == store.doc


def test_a_new_function_gets_a_key_and_old_keys_stay(store: KeyStore) -> None:
    again = KeyStore(store.path, ["one", "two", "three"])
    assert again.master_key == store.master_key
    assert again.function_key("one") == store.function_key("one")
    assert again.function_key("three") not in (store.function_key("one"), store.master_key)
    assert "three" in json.loads(store.path.read_text())["functionKeys"]


def test_unchanged_keys_file_is_not_rewritten(store: KeyStore) -> None:
    before = store.path.stat()
    KeyStore(store.path, ["one", "two"])
    after = store.path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_anonymous_needs_no_key(store: KeyStore) -> None:
    assert store.authorized("anonymous", "one", None)
    assert store.authorized("anonymous", "one", "anything")


@pytest.mark.parametrize("level", ["function", "admin"])
def test_no_key_or_a_wrong_key_is_refused(store: KeyStore, level: str) -> None:
    assert not store.authorized(level, "one", None)
    assert not store.authorized(level, "one", "")
    assert not store.authorized(level, "one", "wrong")
    assert not store.authorized(level, "one", store.master_key[:-1])


def test_function_level_accepts_own_function_host_and_master_keys(store: KeyStore) -> None:
    assert store.authorized("function", "one", store.function_key("one"))
    assert store.authorized("function", "one", store.host_key)
    assert store.authorized("function", "one", store.master_key)


def test_function_level_refuses_another_functions_key(store: KeyStore) -> None:
    assert not store.authorized("function", "one", store.function_key("two"))


def test_admin_level_accepts_only_the_master_key(store: KeyStore) -> None:
    assert store.authorized("admin", "one", store.master_key)
    assert not store.authorized("admin", "one", store.host_key)
    assert not store.authorized("admin", "one", store.function_key("one"))


def test_extra_keys_in_the_file_are_honoured(store: KeyStore) -> None:
    doc = json.loads(store.path.read_text())
    doc["hostKeys"]["ci"] = "ci-host-key"
    doc["functionKeys"]["one"]["partner"] = "partner-key"
    store.path.write_text(json.dumps(doc))
    again = KeyStore(store.path, ["one", "two"])
    assert again.authorized("function", "two", "ci-host-key")
    assert again.authorized("function", "one", "partner-key")
    assert not again.authorized("function", "two", "partner-key")
    assert not again.authorized("admin", "one", "ci-host-key")
