"""`make test`: start a private Azurite on free loopback ports, run pytest, stop it.

Azurite keeps its data in memory and is stopped even when tests fail. The
tests read AZURITE_CONNECTION_STRING. pytest's exit code 5 (no tests ran)
is a failure here, not a success.
"""

from __future__ import annotations

import os
import subprocess
import sys

from devtools.azurite import ROOT, Azurite


def main(argv: list[str]) -> int:
    log = ROOT / ".local" / "azurite-test.log"
    log.parent.mkdir(exist_ok=True)
    with Azurite(log_file=log) as azurite:
        print(
            f"Azurite for the tests on 127.0.0.1:{azurite.blob_port}/{azurite.queue_port}/"
            f"{azurite.table_port} (in memory)",
            flush=True,
        )
        env = {**os.environ, "AZURITE_CONNECTION_STRING": azurite.connection_string}
        code = subprocess.call([sys.executable, "-m", "pytest", *argv], cwd=ROOT, env=env)
    if code == 5:
        print("pytest collected no tests: that is a failure, not a pass", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
