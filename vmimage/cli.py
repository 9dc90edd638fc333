"""`vmimage`: the command line (argparse) and the dispatch to `vmimage.commands`.

Every command takes the connection options, before or after its name:
`vmimage --json list` and `vmimage list --json` are the same.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from vmimage import __version__, lifecycle
from vmimage.errors import EXIT_CODES, INTERRUPTED, USAGE, CliError, UsageError

DEFAULT_URL = "http://127.0.0.1:7071"
DEFAULT_CONTAINER = "uploads"
KEYS_FILE = Path(".local") / "funckeys.json"

OS_TYPES = ("Linux", "Windows")
OS_STATES = ("Generalized", "Specialized")
IMAGE_TYPES = ("OSImage", "VMImage")
CATEGORIES = ("Public", "Community", "User")
IMAGE_STATES = ("Active", "Deprecated", "Disabled")
VM_STATES = ("Running", "Stopped", "StoppedDeallocated")
CACHING = ("None", "ReadOnly", "ReadWrite")

EPILOG = (
    f"defaults: --url {DEFAULT_URL}; --key, for a local URL only: hostKeys.default from\n"
    "  .local/funckeys.json; `upload` writes to UseDevelopmentStorage=true, container\n"
    f"  {DEFAULT_CONTAINER} (--account-url signs in with DefaultAzureCredential instead)\n"
    "\nexit codes:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items())
)


def choice(values: Sequence[str]) -> Callable[[str], str]:
    """A case-insensitive choice that gives back the canonical spelling."""

    def parse(text: str) -> str:
        for v in values:
            if v.lower() == text.strip().lower():
                return v
        raise argparse.ArgumentTypeError(f"choose from {', '.join(values)} (not {text!r})")

    return parse


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number above 0 (not {text!r})")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0 (not {text!r})")
    return value


def data_disk(text: str) -> tuple[int, str | None, str]:
    """`LUN=URL` or `LUN:CACHING=URL` -> (lun, caching or None, url)."""
    left, sep, url = text.partition("=")
    lun_text, _, caching = left.partition(":")
    if not sep or not url or not lun_text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"give LUN=URL or LUN:CACHING=URL (not {text!r})")
    return int(lun_text), (choice(CACHING)(caching) if caching else None), url


def _common(parser: argparse.ArgumentParser, top: bool) -> None:
    """The options every command takes; only the top level sets defaults (argparse
    would otherwise let a subcommand's defaults overwrite what came before its name)."""
    d = None if top else argparse.SUPPRESS
    g = parser.add_argument_group("connection and output")
    g.add_argument("--url", default=d, help="the catalog's base URL (VMIMAGE_URL)")
    g.add_argument("--key", default=d, help="the function key (VMIMAGE_KEY)")
    g.add_argument(
        "--storage-connection-string",
        default=d,
        metavar="CONN",
        help="storage for uploads (VMIMAGE_STORAGE_CONNECTION_STRING)",
    )
    g.add_argument(
        "--account-url",
        default=d,
        metavar="URL",
        help="storage account URL, with DefaultAzureCredential (VMIMAGE_ACCOUNT_URL)",
    )
    g.add_argument("--container", default=d, help="the uploads container (VMIMAGE_CONTAINER)")
    g.add_argument("--json", action="store_true", default=False if top else d, help="print JSON")
    g.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=False if top else d,
        help="no progress and no remarks on stderr (errors still)",
    )


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="vmimage",
        description="The VM image catalog from a terminal: upload disks, list and show "
        "images and families, capture VMs, keep the VM inventory.",
        epilog=EPILOG,
        formatter_class=fmt,
    )
    parser.add_argument("--version", action="version", version=f"vmimage {__version__}")
    _common(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help: str, parent: argparse._SubParsersAction = sub, **kw: object):  # type: ignore[type-arg, no-untyped-def]
        p = parent.add_parser(name, help=help, description=help, formatter_class=fmt, **kw)
        _common(p, top=False)
        return p

    p = command(
        "upload",
        "Check a disk here, upload it as a fixed VHD page blob (converting any other format on "
        "the way), wait for its image.",
    )
    p.add_argument(
        "disk",
        type=Path,
        metavar="DISK",
        help="a disk image: fixed or dynamic VHD, VHDX, qcow2, VMDK, OVA or raw (.img, .raw)",
    )
    p.add_argument(
        "--name",
        metavar="BLOB",
        help="blob name (default: the file's name, with .vhd for the converted disk)",
    )
    p.add_argument(
        "--convert-on-server",
        action="store_true",
        help="send the file as it is (a block blob); the catalog converts it",
    )
    p.add_argument("--image-name", help="image name (default: the blob name without its extension)")
    p.add_argument("--label", help="the image's label (default: its name)")
    p.add_argument("--family", help="image family (default: what the disk says, e.g. Ubuntu 22.04)")
    p.add_argument("--os", type=choice(OS_TYPES), metavar="{Linux,Windows}")
    p.add_argument(
        "--os-state",
        type=choice(OS_STATES),
        metavar="{Generalized,Specialized}",
        help="Generalized (default): an OS image; Specialized: a VM image",
    )
    p.add_argument("--description")
    p.add_argument(
        "--exclude-from-latest",
        action="store_true",
        help="publish it held back from latest (until `vmimage set NAME --include-in-latest`)",
    )
    p.add_argument("--no-wait", action="store_true", help="don't wait for the registration")
    p.add_argument("--timeout", type=seconds, default=600.0, help="seconds to wait (600)")
    p.add_argument("--overwrite", action="store_true", help="replace a blob of the same name")
    p.add_argument("--workers", type=positive, default=8, help="parallel page writes (8)")

    p = command("status", "What became of an uploaded blob (Pending, Registered, Rejected).")
    p.add_argument("blob", metavar="BLOB")
    p.add_argument("--wait", action="store_true", help="wait until it is judged")
    p.add_argument("--timeout", type=seconds, default=600.0, help="seconds to wait (600)")

    p = command("list", "List images (one page; --all for every page).")
    p.add_argument("--family")
    p.add_argument("--type", type=choice(IMAGE_TYPES), metavar="{OSImage,VMImage}")
    p.add_argument("--os", type=choice(OS_TYPES), metavar="{Linux,Windows}")
    p.add_argument("--category", type=choice(CATEGORIES), metavar="{Public,Community,User}")
    p.add_argument("--select", metavar="FIELD,...", help="only these fields, e.g. ImageName,Label")
    p.add_argument("--top", type=positive, help="images per page (the service's default: 100)")
    p.add_argument("--all", action="store_true", help="follow continuation tokens to the end")
    p.add_argument("--continuation-token", metavar="TOKEN", help="start from this page")
    p.add_argument(
        "--state",
        type=choice(IMAGE_STATES),
        metavar="{Active,Deprecated,Disabled}",
        help="only images in this state now (past its end of life, Active counts as Deprecated)",
    )
    p.add_argument(
        "--content-hash", metavar="SHA256", help="only images with a disk of this content"
    )

    command("families", "List image families: images per state, latest and newest image.")

    p = command("show", "Show one image.")
    p.add_argument("name", metavar="NAME")

    p = command(
        "latest",
        "Show the latest image of a family: its newest that is Active, not past its end of "
        "life and not held back from latest.",
    )
    p.add_argument("family", metavar="FAMILY")
    p.add_argument("--os", type=choice(OS_TYPES), metavar="{Linux,Windows}")
    p.add_argument(
        "--include-excluded", action="store_true", help="count images held back from latest too"
    )

    lifecycle.add_commands(command, choice)

    p = command("rm", "Remove an image (and, with --delete-vhd, its disks).")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--delete-vhd", action="store_true", help="delete its disk blobs too")

    p = command("capture", "Capture a stopped VM into an image (Save-AzureVMImage).")
    p.add_argument("--service", required=True, help="the VM's cloud service")
    p.add_argument("--vm", required=True, help="the VM's name")
    p.add_argument("--image", required=True, help="the new image's name")
    p.add_argument("--label")
    p.add_argument(
        "--os-state",
        type=choice(OS_STATES),
        metavar="{Generalized,Specialized}",
        help="none: an OS image, VM deleted; Generalized: VM image, VM deleted; "
        "Specialized: VM image, VM kept",
    )
    p.add_argument("--operation-id", help="your id for the operation (retries are idempotent)")
    p.add_argument("--wait", action="store_true", help="follow the operation to its end")
    p.add_argument("--timeout", type=seconds, default=1800.0, help="seconds to wait (1800)")

    p = command("operation", "Show an operation (a capture), optionally until it ends.")
    p.add_argument("operation_id", metavar="ID")
    p.add_argument("--wait", action="store_true", help="follow the operation to its end")
    p.add_argument("--timeout", type=seconds, default=1800.0, help="seconds to wait (1800)")

    p = command(
        "doctor",
        "Check the catalog's invariants: every image's disks exist and are held by it alone, "
        "no claimed or leased disk without an image, no operation stuck, no orphaned copy or "
        "snapshot. Exit 1 with the list when anything is wrong.",
    )
    p.add_argument(
        "--stuck-after",
        type=seconds,
        default=3600.0,
        help="seconds an operation may stay InProgress before it counts as stuck (3600)",
    )

    p = command(
        "publishsettings",
        "Make a management certificate, register it for the classic API (with the host or "
        "master key), and write a .publishsettings file and the key and certificate as PEM.",
    )
    p.add_argument(
        "--out",
        default="vmimage.publishsettings",
        metavar="FILE",
        help="the .publishsettings file to write (vmimage.publishsettings); the PEM goes "
        "beside it as FILE.pem",
    )
    p.add_argument(
        "--subscription", metavar="ID", help="the subscription id (local: the default one)"
    )
    p.add_argument(
        "--management-url",
        metavar="URL",
        help="ServiceManagementUrl in the file (default: --url over https; a local "
        "http://HOST:PORT means https://HOST:PORT+1)",
    )
    p.add_argument("--name", default="VM image catalog", help="the subscription's name in the file")

    vm = command("vm", "The VM inventory captures read.")
    vms = vm.add_subparsers(dest="vm_command", metavar="VMCOMMAND", required=True)
    p = command("add", "Add or replace a VM.", parent=vms)
    p.add_argument("service", metavar="SERVICE")
    p.add_argument("vm", metavar="VM")
    states = "{" + ",".join(VM_STATES) + "}"
    p.add_argument("--state", type=choice(VM_STATES), required=True, metavar=states)
    p.add_argument("--os", type=choice(OS_TYPES), required=True, metavar="{Linux,Windows}")
    p.add_argument("--os-disk", required=True, metavar="URL", help="the OS disk blob's URL")
    p.add_argument("--os-caching", type=choice(CACHING), metavar="{None,ReadOnly,ReadWrite}")
    p.add_argument(
        "--data-disk",
        type=data_disk,
        action="append",
        default=[],
        metavar="LUN[:CACHING]=URL",
        help="a data disk (repeat for each)",
    )
    p = command("list", "List VMs (one page; --all for every page).", parent=vms)
    p.add_argument("--top", type=positive, help="VMs per page (100)")
    p.add_argument("--all", action="store_true", help="follow continuation tokens to the end")
    for name, text in (("show", "Show a VM."), ("rm", "Remove a VM from the inventory.")):
        p = command(name, text, parent=vms)
        p.add_argument("service", metavar="SERVICE")
        p.add_argument("vm", metavar="VM")
    return parser


def resolve(args: argparse.Namespace, env: dict[str, str] | None = None) -> argparse.Namespace:
    """Fill the connection options from the environment and the local key file."""
    e = os.environ if env is None else env
    args.url = (args.url or e.get("VMIMAGE_URL") or DEFAULT_URL).rstrip("/")
    args.key = args.key or e.get("VMIMAGE_KEY") or None
    if args.key is None:
        from vmimage.api import is_loopback

        if is_loopback(args.url):
            args.key = local_key()
    conn = args.storage_connection_string or e.get("VMIMAGE_STORAGE_CONNECTION_STRING")
    account = args.account_url or e.get("VMIMAGE_ACCOUNT_URL")
    if args.storage_connection_string and args.account_url:
        raise UsageError(
            "ConflictingOptions", "give --storage-connection-string or --account-url, not both"
        )
    if args.account_url:
        conn = None
    elif args.storage_connection_string:
        account = None
    args.storage_connection_string, args.account_url = conn, account
    args.container = args.container or e.get("VMIMAGE_CONTAINER") or DEFAULT_CONTAINER
    return args


def local_key() -> str | None:
    """The local runner's host key, from ./.local/funckeys.json or the checkout's."""
    for base in (Path.cwd(), Path(__file__).resolve().parent.parent):
        try:
            doc = json.loads((base / KEYS_FILE).read_text())
            return str(doc["hostKeys"]["default"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def main(argv: Sequence[str] | None = None) -> int:
    from vmimage.output import Printer

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error (2)
        return e.code if isinstance(e.code, int) else USAGE
    printer = Printer(as_json=args.json, quiet=args.quiet)
    try:
        resolve(args)
        from vmimage import commands

        return commands.run(args, printer)
    except CliError as e:
        printer.error(e.code, e.message)
        return e.exit_code
    except KeyboardInterrupt:
        printer.error("Interrupted", "stopped (Ctrl-C)")
        return INTERRUPTED
    except BrokenPipeError:  # `vmimage list | head`: stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
