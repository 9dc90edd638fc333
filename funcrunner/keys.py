"""Function keys, as the host keeps them: a master key, host keys, function keys.

Kept in a git-ignored JSON file created at first start. A function-level
route accepts its own function keys, any host key or the master key; an
admin-level route only the master key. Keys come in `x-functions-key` or
`?code=`.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any


def _new_key() -> str:
    return secrets.token_urlsafe(40)


class KeyStore:
    def __init__(self, path: Path, function_names: list[str]) -> None:
        self.path = path
        self.doc = self._load_or_create(function_names)

    def _load_or_create(self, function_names: list[str]) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if self.path.exists():
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        changed = not doc
        doc.setdefault("masterKey", _new_key())
        doc.setdefault("hostKeys", {"default": _new_key()})
        functions = doc.setdefault("functionKeys", {})
        for name in function_names:
            if name not in functions:
                functions[name] = {"default": _new_key()}
                changed = True
        if changed:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc, indent=2), encoding="utf-8")
            os.chmod(tmp, 0o600)
            tmp.replace(self.path)
        return doc

    @property
    def master_key(self) -> str:
        return self.doc["masterKey"]

    @property
    def host_key(self) -> str:
        return self.doc["hostKeys"]["default"]

    def function_key(self, function: str) -> str:
        return self.doc["functionKeys"][function]["default"]

    def authorized(self, level: str, function: str, presented: str | None) -> bool:
        if level == "anonymous":
            return True
        if not presented:
            return False
        candidates = [self.master_key]
        if level == "function":
            candidates += list(self.doc["hostKeys"].values())
            candidates += list(self.doc["functionKeys"].get(function, {}).values())
        return any(hmac.compare_digest(presented, k) for k in candidates)
