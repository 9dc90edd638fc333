"""Generate the platform/community image gallery shipped in ``shared/data/gallery.json``.

The gallery mirrors what the classic ``Get-AzureVMImage`` cmdlet lists: platform OS
images (Windows Server, SQL Server, Ubuntu, OpenLogic CentOS, SUSE, Oracle Linux,
Debian), community (VM Depot / Bitnami) OS images and a few platform VM images that
carry data disks. Every family has several dated versions, so that "the newest image
of a family" is a meaningful question.

The output is fully deterministic (no clock, no randomness, stdlib only). Regenerate
the data file byte for byte with, from the repository root::

    python devtools/gen_gallery.py > shared/data/gallery.json

Conventions:

* ``ImageName`` is ``<publisher hash>__<name>`` as on the classic platform gallery.
* For an OS image, ``MediaLink`` equals ``OSDiskConfiguration.MediaLink`` and
  ``LogicalSizeInGB`` equals ``OSDiskConfiguration.LogicalDiskSizeInGB``;
  ``DataDiskConfigurations`` is empty.
* For a VM image there is no top-level ``MediaLink``; ``OSDiskConfiguration``
  carries the OS disk, ``DataDiskConfigurations`` the data disks (LUNs 0..n-1), and
  ``LogicalSizeInGB`` is the OS disk size.
"""

from __future__ import annotations

import hashlib
import json
import sys

# Publisher hash prefixes of the classic platform gallery.
HASH_WINDOWS = "a699494373c04fc0bc8f2bb1389d6106"
HASH_SQL = "fb83b3509582419d99629ce476bcb5c8"
HASH_CANONICAL = "b39f27a8b8c64d52b05eac6a62ebad85"
HASH_OPENLOGIC = "5112500ae3b842c8b9c604889f8753c3"
HASH_SUSE = "b4590d9e3ed742e4a1d46e5424aa335e"
HASH_ORACLE = "c290a6b031d841e09f2da759bbabe71f"
HASH_DEBIAN = "b39f27a8b8c64d52b05eac6a62ebad85"

PLATFORM_BLOB = "https://azurevmimages.blob.core.windows.net"
VMDEPOT_BLOB = "https://vmdepotwestus.blob.core.windows.net"

MS_EULA = "http://go.microsoft.com/fwlink/?LinkId=290766"
MS_PRIVACY = "http://go.microsoft.com/fwlink/?LinkId=512132"

# Regions, with the date from which new platform images were published there.
REGIONS: list[tuple[str, str]] = [
    ("0000-00-00", "East US"),
    ("0000-00-00", "West US"),
    ("0000-00-00", "North Central US"),
    ("0000-00-00", "South Central US"),
    ("0000-00-00", "North Europe"),
    ("0000-00-00", "West Europe"),
    ("0000-00-00", "East Asia"),
    ("0000-00-00", "Southeast Asia"),
    ("2014-03-01", "Japan East"),
    ("2014-03-01", "Japan West"),
    ("2014-06-01", "Brazil South"),
    ("2014-06-01", "Central US"),
    ("2014-06-01", "East US 2"),
    ("2014-11-01", "Australia East"),
    ("2014-11-01", "Australia Southeast"),
    ("2015-10-01", "Central India"),
    ("2015-10-01", "South India"),
    ("2015-10-01", "West India"),
    ("2016-06-01", "Canada Central"),
    ("2016-06-01", "Canada East"),
    ("2016-10-01", "UK South"),
    ("2016-10-01", "UK West"),
    ("2016-10-01", "West US 2"),
    ("2016-10-01", "West Central US"),
    ("2017-03-01", "Korea Central"),
    ("2017-03-01", "Korea South"),
]


def locations(date: str) -> str:
    """The ';'-separated list of regions a platform image published on ``date`` is in."""
    return ";".join(name for since, name in REGIONS if since <= date)


def iso(date: str, hour: str) -> str:
    """``2014-10-20`` + ``07`` -> ``2014-10-20T07:00:00Z``."""
    return f"{date}T{hour}:00:00Z"


def compact(date: str) -> str:
    return date.replace("-", "")


def month_name(date: str) -> str:
    months = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ]
    return f"{months[int(date[5:7]) - 1]} {date[:4]}"


def base_name(image_name: str) -> str:
    return image_name[: -len(".vhd")] if image_name.endswith(".vhd") else image_name


def os_image(
    *,
    name: str,
    family: str,
    label: str,
    description: str,
    os: str,
    category: str,
    publisher: str,
    date: str,
    hour: str,
    size_gb: int,
    blob_root: str,
    eula: str,
    icon: str,
    location: str,
    is_premium: bool = False,
    privacy: str | None = None,
    pricing: str | None = None,
    vm_size: str | None = None,
) -> dict:
    media = f"{blob_root}/{base_name(name)}.vhd"
    image: dict = {
        "ImageName": name,
        "ImageType": "OSImage",
        "Label": label,
        "Description": description,
        "ImageFamily": family,
        "OS": os,
        "Category": category,
        "PublisherName": publisher,
        "PublishedDate": iso(date, hour),
        "LogicalSizeInGB": size_gb,
        "MediaLink": media,
        "Eula": eula,
        "IsPremium": is_premium,
        "ShowInGui": True,
        "Location": location,
        "IconUri": f"{icon}_100.png",
        "SmallIconUri": f"{icon}_45.png",
        "OSDiskConfiguration": {
            "Name": f"{base_name(name)}-os",
            "OS": os,
            "OSState": "Generalized",
            "HostCaching": "ReadWrite",
            "MediaLink": media,
            "LogicalDiskSizeInGB": size_gb,
        },
        "DataDiskConfigurations": [],
    }
    if privacy:
        image["PrivacyUri"] = privacy
    if pricing:
        image["PricingDetailLink"] = pricing
    if vm_size:
        image["RecommendedVMSize"] = vm_size
    return image


def vm_image(
    *,
    name: str,
    family: str,
    label: str,
    description: str,
    os: str,
    publisher: str,
    date: str,
    hour: str,
    os_size_gb: int,
    data_disks: list[tuple[str, str, int]],
    eula: str,
    icon: str,
    is_premium: bool,
    privacy: str | None,
    pricing: str | None,
    vm_size: str,
) -> dict:
    root = f"{PLATFORM_BLOB}/vmimages/{name}"
    image: dict = {
        "ImageName": name,
        "ImageType": "VMImage",
        "Label": label,
        "Description": description,
        "ImageFamily": family,
        "OS": os,
        "Category": "Public",
        "PublisherName": publisher,
        "PublishedDate": iso(date, hour),
        "LogicalSizeInGB": os_size_gb,
        "Eula": eula,
        "IsPremium": is_premium,
        "ShowInGui": True,
        "Location": locations(date),
        "IconUri": f"{icon}_100.png",
        "SmallIconUri": f"{icon}_45.png",
        "RecommendedVMSize": vm_size,
        "OSDiskConfiguration": {
            "Name": f"{name}-os-{date}",
            "OS": os,
            "OSState": "Generalized",
            "HostCaching": "ReadWrite",
            "MediaLink": f"{root}-os-{date}.vhd",
            "LogicalDiskSizeInGB": os_size_gb,
        },
        "DataDiskConfigurations": [
            {
                "Name": f"{name}-{role}-{lun}",
                "Lun": lun,
                "HostCaching": caching,
                "MediaLink": f"{root}-{role}-{lun}.vhd",
                "LogicalDiskSizeInGB": size,
            }
            for lun, (role, caching, size) in enumerate(data_disks)
        ],
    }
    if privacy:
        image["PrivacyUri"] = privacy
    if pricing:
        image["PricingDetailLink"] = pricing
    return image


def mark_show_in_gui(images: list[dict]) -> None:
    """Like the portal: only the two newest versions of each family show in the gallery."""
    by_family: dict[str, list[dict]] = {}
    for image in images:
        by_family.setdefault(image["ImageFamily"], []).append(image)
    for members in by_family.values():
        members.sort(key=lambda i: i["PublishedDate"])
        for image in members[:-2]:
            image["ShowInGui"] = False


# --------------------------------------------------------------------------- Windows

WINDOWS_FAMILIES = [
    (
        "Windows Server 2008 R2 SP1",
        "Win2K8R2SP1-Datacenter",
        "WindowsServer2008R2",
        "Windows Server 2008 R2 is a multi-purpose server designed to increase the reliability "
        "and flexibility of your server or private cloud infrastructure, helping you to save "
        "time and reduce costs.",
        None,
        ["2014-05-23", "2014-08-22", "2014-10-20", "2014-12-12", "2015-05-21", "2016-12-15"],
    ),
    (
        "Windows Server 2012 Datacenter",
        "Windows-Server-2012-Datacenter",
        "WindowsServer2012",
        "Windows Server 2012 incorporates Microsoft's experience building and operating public "
        "clouds, resulting in a dynamic, highly available server platform.",
        None,
        ["2014-05-23", "2014-08-22", "2014-10-20", "2014-12-12", "2015-05-21"],
    ),
    (
        "Windows Server 2012 R2 Datacenter",
        "Windows-Server-2012-R2",
        "WindowsServer2012R2",
        "At the heart of the Microsoft Cloud OS vision, Windows Server 2012 R2 brings "
        "Microsoft's experience delivering global-scale cloud services into your "
        "infrastructure.",
        None,
        [
            "2014-04-17",
            "2014-08-22",
            "2014-10-20",
            "2014-12-12",
            "2015-02-19",
            "2015-05-21",
            "2016-09-14",
        ],
    ),
    (
        "Windows Server 2016 Datacenter",
        "Windows-Server-2016-Datacenter",
        "WindowsServer2016",
        "Windows Server 2016 is the cloud-ready operating system that supports your current "
        "workloads while introducing new technologies that make it easy to transition to "
        "cloud computing.",
        "Standard_D2_v2",
        ["2016-10-12", "2017-02-15", "2017-07-12", "2017-11-14", "2018-03-14"],
    ),
    (
        "Windows Server 2019 Datacenter",
        "Windows-Server-2019-Datacenter",
        "WindowsServer2019",
        "Windows Server 2019 is the operating system that bridges on-premises environments "
        "with Azure services, enabling hybrid scenarios while maximizing existing "
        "investments.",
        "Standard_D2s_v3",
        ["2018-12-11", "2019-05-14", "2020-01-14", "2020-08-11", "2021-04-13"],
    ),
    (
        "Windows Server 2022 Datacenter",
        "Windows-Server-2022-Datacenter",
        "WindowsServer2022",
        "Windows Server 2022 brings advanced multi-layer security, hybrid capabilities with "
        "Azure, and a flexible application platform.",
        "Standard_D2s_v3",
        ["2021-09-03", "2022-02-08", "2022-08-09", "2023-02-14", "2023-11-14", "2024-06-11"],
    ),
]


def windows_images() -> list[dict]:
    images = []
    for family, stem, icon, description, vm_size, dates in WINDOWS_FAMILIES:
        for date in dates:
            version = f"{compact(date)[:6]}.01"
            images.append(
                os_image(
                    name=f"{HASH_WINDOWS}__{stem}-{version}-en.us-127GB.vhd",
                    family=family,
                    label=f"{family}, {month_name(date)}",
                    description=description,
                    os="Windows",
                    category="Public",
                    publisher="Microsoft Windows Server Group",
                    date=date,
                    hour="07",
                    size_gb=127,
                    blob_root=f"{PLATFORM_BLOB}/images",
                    eula=MS_EULA,
                    icon=icon,
                    location=locations(date),
                    privacy=MS_PRIVACY,
                    vm_size=vm_size,
                )
            )
    return images


# ------------------------------------------------------------------------ SQL Server

SQL_FAMILIES = [
    (
        "SQL Server 2012 SP2 Enterprise on Windows Server 2012",
        "Ent",
        "Win2012",
        "SQLServer2012",
        "Large",
        "https://azure.microsoft.com/pricing/details/virtual-machines/sql-server-enterprise/",
        [
            ("2012SP2", "11.0.5058.0", "2014-06-20"),
            ("2012SP2", "11.0.5532.0", "2014-08-22"),
            ("2012SP2", "11.0.5548.0", "2014-10-20"),
            ("2012SP2", "11.0.5569.0", "2015-02-19"),
        ],
    ),
    (
        "SQL Server 2014 Enterprise on Windows Server 2012 R2",
        "Ent",
        "Win2012R2",
        "SQLServer2014",
        "Large",
        "https://azure.microsoft.com/pricing/details/virtual-machines/sql-server-enterprise/",
        [
            ("2014RTM", "12.0.2361.0", "2014-05-30"),
            ("2014RTM", "12.0.2430.0", "2014-08-22"),
            ("2014RTM", "12.0.2456.0", "2014-11-14"),
            ("2014SP1", "12.0.4100.1", "2015-05-21"),
            ("2014SP1", "12.0.4416.0", "2015-09-15"),
        ],
    ),
    (
        "SQL Server 2016 SP1 Standard on Windows Server 2016",
        "Std",
        "Win2016",
        "SQLServer2016",
        "Standard_DS3_v2",
        "https://azure.microsoft.com/pricing/details/virtual-machines/sql-server-standard/",
        [
            ("2016SP1", "13.0.4001.0", "2016-11-22"),
            ("2016SP1", "13.0.4202.2", "2017-03-14"),
            ("2016SP1", "13.0.4411.0", "2017-08-08"),
            ("2016SP1", "13.0.4466.4", "2018-03-13"),
        ],
    ),
    (
        "SQL Server 2019 Standard on Windows Server 2019",
        "Std",
        "Win2019",
        "SQLServer2019",
        "Standard_DS3_v2",
        "https://azure.microsoft.com/pricing/details/virtual-machines/sql-server-standard/",
        [
            ("2019", "15.0.2000.5", "2019-11-06"),
            ("2019", "15.0.4033.1", "2020-05-12"),
            ("2019", "15.0.4083.2", "2020-12-08"),
            ("2019", "15.0.4123.1", "2021-05-11"),
        ],
    ),
]

SQL_EULA = f"http://go.microsoft.com/fwlink/?LinkID=320789;{MS_EULA}"


def servicing(date: str) -> str:
    return f"cy{date[2:4]}su{date[5:7]}"


def sql_images() -> list[dict]:
    images = []
    for family, edition, win, icon, vm_size, pricing, builds in SQL_FAMILIES:
        product, windows = family.split(" on ")
        for release, build, date in builds:
            name = f"{HASH_SQL}__SQL-Server-{release}-{build}-{edition}-ENU-{win}-{servicing(date)}"
            images.append(
                os_image(
                    name=name,
                    family=family,
                    label=f"{family} ({build}), {month_name(date)}",
                    description=(
                        f"This image contains the full version of {product} ({build}) on "
                        f"{windows}. Some SQL Server components require additional setup "
                        "and configuration before use. The SQL Server license is included "
                        "in the hourly price of the virtual machine."
                    ),
                    os="Windows",
                    category="Public",
                    publisher="Microsoft SQL Server Group",
                    date=date,
                    hour="07",
                    size_gb=127,
                    blob_root=f"{PLATFORM_BLOB}/images",
                    eula=SQL_EULA,
                    icon=icon,
                    location=locations(date),
                    is_premium=True,
                    privacy=MS_PRIVACY,
                    pricing=pricing,
                    vm_size=vm_size,
                )
            )
    return images


# ---------------------------------------------------------------------------- Ubuntu

UBUNTU_FAMILIES = [
    (
        "12.04",
        "Precise Pangolin",
        [
            ("12_04_4", "2014-02-27"),
            ("12_04_4", "2014-04-28"),
            ("12_04_5", "2014-09-27"),
            ("12_04_5", "2015-01-27"),
            ("12_04_5", "2015-06-12"),
        ],
    ),
    (
        "14.04",
        "Trusty Tahr",
        [
            ("14_04", "2014-07-24"),
            ("14_04_1", "2014-09-27"),
            ("14_04_1", "2014-11-25"),
            ("14_04_2", "2015-03-09"),
            ("14_04_3", "2015-08-05"),
            ("14_04_4", "2016-02-22"),
        ],
    ),
    (
        "16.04",
        "Xenial Xerus",
        [
            ("16_04", "2016-04-20"),
            ("16_04_1", "2016-08-15"),
            ("16_04_2", "2017-02-21"),
            ("16_04_3", "2017-08-11"),
            ("16_04_5", "2018-08-09"),
        ],
    ),
    (
        "18.04",
        "Bionic Beaver",
        [
            ("18_04", "2018-04-26"),
            ("18_04_1", "2018-08-08"),
            ("18_04_2", "2019-02-20"),
            ("18_04_3", "2019-08-13"),
            ("18_04_5", "2020-08-06"),
        ],
    ),
    (
        "20.04",
        "Focal Fossa",
        [
            ("20_04", "2020-04-23"),
            ("20_04_1", "2020-08-11"),
            ("20_04_2", "2021-02-05"),
            ("20_04_3", "2021-08-24"),
            ("20_04_4", "2022-02-24"),
            ("20_04_6", "2023-03-23"),
        ],
    ),
    (
        "22.04",
        "Jammy Jellyfish",
        [
            ("22_04", "2022-04-21"),
            ("22_04_1", "2022-08-10"),
            ("22_04_2", "2023-02-22"),
            ("22_04_3", "2023-08-10"),
            ("22_04_4", "2024-02-22"),
            ("22_04_5", "2024-09-11"),
        ],
    ),
    (
        "24.04",
        "Noble Numbat",
        [
            ("24_04", "2024-04-23"),
            ("24_04", "2024-06-05"),
            ("24_04_1", "2024-08-28"),
            ("24_04_1", "2024-11-12"),
            ("24_04_2", "2025-02-20"),
        ],
    ),
]

UBUNTU_EULA = "http://www.ubuntu.com/project/about-ubuntu/licensing"
UBUNTU_PRIVACY = "http://www.ubuntu.com/aboutus/privacypolicy"


def ubuntu_images() -> list[dict]:
    images = []
    for release, codename, builds in UBUNTU_FAMILIES:
        family = f"Ubuntu Server {release} LTS"
        for point, date in builds:
            dotted = point.replace("_", ".")
            images.append(
                os_image(
                    name=(
                        f"{HASH_CANONICAL}__Ubuntu-{point}-LTS-amd64-server-"
                        f"{compact(date)}-en-us-30GB"
                    ),
                    family=family,
                    label=f"Ubuntu Server {dotted} LTS",
                    description=(
                        f"Ubuntu Server {dotted} LTS ({codename}, amd64, {compact(date)}) "
                        "for Microsoft Azure. Ubuntu Server is the world's most popular "
                        "Linux for cloud environments. Updates and patches for Ubuntu "
                        f"{release} LTS are available for five years from release."
                    ),
                    os="Linux",
                    category="Public",
                    publisher="Canonical",
                    date=date,
                    hour="08",
                    size_gb=30,
                    blob_root=f"{PLATFORM_BLOB}/images",
                    eula=f"{UBUNTU_EULA};{UBUNTU_PRIVACY}",
                    icon="Ubuntu-cof",
                    location=locations(date),
                    privacy=UBUNTU_PRIVACY,
                )
            )
    return images


# ---------------------------------------------------------------------------- CentOS

CENTOS_FAMILIES = [
    ("6.5", ["2014-01-21", "2014-04-15", "2014-11-13"]),
    ("6.6", ["2014-10-29", "2015-01-28", "2015-03-25"]),
    ("7.0", ["2014-09-26", "2014-11-13", "2015-01-28"]),
    ("7.1", ["2015-04-10", "2015-06-03", "2015-07-31"]),
    ("7.2", ["2015-12-14", "2016-03-29", "2016-06-20"]),
    ("7.3", ["2016-12-21", "2017-03-31", "2017-06-15"]),
    ("7.4", ["2017-09-21", "2018-01-22", "2018-04-19"]),
    ("7.5", ["2018-06-26", "2018-08-15", "2018-10-16"]),
    ("7.6", ["2018-12-19", "2019-03-27", "2019-07-08"]),
    ("7.7", ["2019-10-01", "2020-01-16", "2020-03-17"]),
    ("7.8", ["2020-05-12", "2020-08-18", "2020-10-15"]),
    ("7.9", ["2020-11-12", "2021-06-15", "2022-07-07", "2023-09-11", "2024-04-15"]),
]

OPENLOGIC_EULA = "http://www.openlogic.com/azure/service-agreement/"
OPENLOGIC_PRIVACY = "http://www.openlogic.com/privacy-policy/"


def centos_images() -> list[dict]:
    images = []
    for release, dates in CENTOS_FAMILIES:
        family = f"OpenLogic CentOS {release}"
        for date in dates:
            images.append(
                os_image(
                    name=f"{HASH_OPENLOGIC}__OpenLogic-CentOS-{release.replace('.', '')}-"
                    f"{compact(date)}",
                    family=family,
                    label=f"OpenLogic {release}",
                    description=(
                        f"This distribution of Linux is based on CentOS version {release} and "
                        "is provided by OpenLogic. It contains an installation of the Basic "
                        "Server packages and the Microsoft Azure Linux Agent. Image built on "
                        f"{date}."
                    ),
                    os="Linux",
                    category="Public",
                    publisher="OpenLogic",
                    date=date,
                    hour="08",
                    size_gb=30,
                    blob_root=f"{PLATFORM_BLOB}/images",
                    eula=OPENLOGIC_EULA,
                    icon="OpenLogic",
                    location=locations(date),
                    privacy=OPENLOGIC_PRIVACY,
                )
            )
    return images


# ------------------------------------------------------------------------------ SUSE

SUSE_FAMILIES = [
    (
        "SUSE Linux Enterprise Server 11 SP3",
        "suse-sles-11-sp3",
        "Suse11",
        "SUSE Linux Enterprise Server is a highly reliable, scalable, and secure server "
        "operating system, built to power mission-critical workloads in both physical and "
        "virtual environments. This is SLES 11 Service Pack 3.",
        ["2014-03-06", "2014-06-09", "2014-09-30", "2014-12-05", "2015-02-20"],
    ),
    (
        "SUSE Linux Enterprise Server 12",
        "suse-sles-12",
        "Suse12",
        "SUSE Linux Enterprise Server 12 is a modular, general-purpose server operating "
        "system with reduced downtime, improved efficiency and accelerated innovation.",
        ["2014-10-23", "2015-02-13", "2015-06-01", "2015-10-12", "2016-02-15"],
    ),
    (
        "SUSE Linux Enterprise Server 15",
        "suse-sles-15",
        "Suse15",
        "SUSE Linux Enterprise Server 15 is the multimodal operating system that bridges "
        "traditional and software-defined infrastructure.",
        ["2018-07-16", "2018-12-11", "2019-03-26", "2019-08-01"],
    ),
    (
        "openSUSE 13.2",
        "suse-opensuse-13-2",
        "OpenSuse12",
        "openSUSE is a free and Linux-based operating system for your PC, laptop or server, "
        "developed by the openSUSE community.",
        ["2014-11-05", "2015-01-27", "2015-05-11", "2015-08-18"],
    ),
]

SUSE_EULA = "http://www.suse.com/licensing/eula/"
SUSE_PRIVACY = "http://www.suse.com/company/policies/privacy/"


def suse_images() -> list[dict]:
    images = []
    for family, stem, icon, description, dates in SUSE_FAMILIES:
        for date in dates:
            images.append(
                os_image(
                    name=f"{HASH_SUSE}__{stem}-v{compact(date)}",
                    family=family,
                    label=f"{family} (v{compact(date)})",
                    description=description,
                    os="Linux",
                    category="Public",
                    publisher="SUSE",
                    date=date,
                    hour="08",
                    size_gb=30,
                    blob_root=f"{PLATFORM_BLOB}/images",
                    eula=SUSE_EULA,
                    icon=icon,
                    location=locations(date),
                    privacy=SUSE_PRIVACY,
                )
            )
    return images


# ---------------------------------------------------------------------------- Oracle

ORACLE_FAMILIES = [
    ("6", ["2014-03-18", "2014-07-09", "2014-12-03", "2015-06-15"]),
    ("7", ["2014-09-25", "2014-12-04", "2015-06-16", "2016-02-10"]),
]

ORACLE_EULA = "http://www.oracle.com/technetwork/licenses/oracle-linux-license-2064390.html"
ORACLE_PRIVACY = "http://www.oracle.com/us/legal/privacy/index.html"


def oracle_images() -> list[dict]:
    images = []
    for major, dates in ORACLE_FAMILIES:
        family = f"Oracle Linux {major}"
        for date in dates:
            month, year = int(date[5:7]), date[:4]
            images.append(
                os_image(
                    name=f"{HASH_ORACLE}__Oracle-Linux-{major}-{month}-{year}",
                    family=family,
                    label=f"Oracle Linux {major}, {month_name(date)}",
                    description=(
                        f"Oracle Linux {major} with the Unbreakable Enterprise Kernel, ready for "
                        "Microsoft Azure. Oracle Linux is free to download and use; support is "
                        "available through an Oracle Linux Support subscription."
                    ),
                    os="Linux",
                    category="Public",
                    publisher="Oracle",
                    date=date,
                    hour="08",
                    size_gb=30,
                    blob_root=f"{PLATFORM_BLOB}/images",
                    eula=ORACLE_EULA,
                    icon="OracleLinux",
                    location=locations(date),
                    privacy=ORACLE_PRIVACY,
                )
            )
    return images


# ---------------------------------------------------------------------------- Debian

DEBIAN_FAMILIES = [
    ("8", "Jessie", "credativ", ["2015-04-26", "2015-09-07", "2016-04-04", "2017-01-17"]),
    ("9", "Stretch", "credativ", ["2017-06-17", "2017-12-09", "2018-07-14", "2019-04-27"]),
    ("10", "Buster", "Debian", ["2019-07-06", "2020-02-08", "2020-09-26", "2021-08-14"]),
    (
        "11",
        "Bullseye",
        "Debian",
        ["2021-08-15", "2022-03-26", "2022-12-17", "2023-04-29", "2023-10-07"],
    ),
    (
        "12",
        "Bookworm",
        "Debian",
        ["2023-06-10", "2023-10-08", "2024-02-10", "2024-06-29", "2024-11-09"],
    ),
]

DEBIAN_EULA = "http://www.debian.org/legal/licenses/"
CREDATIV_EULA = f"{DEBIAN_EULA};http://www.credativ.co.uk/credativ-blog/debian-azure"


def debian_images() -> list[dict]:
    images = []
    for major, codename, publisher, dates in DEBIAN_FAMILIES:
        family = f"Debian {major} {codename}"
        for date in dates:
            images.append(
                os_image(
                    name=f"{HASH_DEBIAN}__Debian-{major}-amd64-{compact(date)}-30GB",
                    family=family,
                    label=f'Debian {major} "{codename}" ({compact(date)})',
                    description=(
                        f'Debian GNU/Linux {major} "{codename}" for Microsoft Azure, '
                        f"amd64, built on {date}"
                        + (" and supported by credativ." if publisher == "credativ" else ".")
                    ),
                    os="Linux",
                    category="Public",
                    publisher=publisher,
                    date=date,
                    hour="08",
                    size_gb=30,
                    blob_root=f"{PLATFORM_BLOB}/images",
                    eula=CREDATIV_EULA if publisher == "credativ" else DEBIAN_EULA,
                    icon="Debian",
                    location=locations(date),
                    privacy="http://www.debian.org/legal/privacy",
                )
            )
    return images


# ------------------------------------------------------------------------- Community

COMMUNITY_FAMILIES = [
    (
        "WordPress (Bitnami)",
        "Bitnami",
        "bitnami-wordpress",
        "WordPress",
        "Bitnami WordPress Stack: the world's most popular blogging and content management "
        "platform, packaged with Apache, MySQL and PHP on Ubuntu 14.04.",
        [
            ("3.9.1-0", "2014-05-08"),
            ("4.0-1", "2014-09-05"),
            ("4.1-0", "2014-12-19"),
            ("4.2.2-0", "2015-05-08"),
            ("4.3-0", "2015-08-19"),
        ],
    ),
    (
        "LAMP Stack (Bitnami)",
        "Bitnami",
        "bitnami-lampstack",
        "LAMP",
        "Bitnami LAMP Stack: Apache, MySQL and PHP, ready to run your own PHP application on "
        "Ubuntu 14.04.",
        [
            ("5.4.31-0", "2014-07-25"),
            ("5.4.34-0", "2014-10-10"),
            ("5.5.20-0", "2015-01-23"),
            ("5.6.11-0", "2015-07-14"),
        ],
    ),
    (
        "Redmine (Bitnami)",
        "Bitnami",
        "bitnami-redmine",
        "Redmine",
        "Bitnami Redmine Stack: a flexible project management web application with issue "
        "tracking, wikis and Git/Subversion integration, on Ubuntu 14.04.",
        [
            ("2.5.2-0", "2014-07-17"),
            ("2.6.0-0", "2014-12-02"),
            ("3.0.1-0", "2015-03-24"),
            ("3.1.0-0", "2015-07-28"),
        ],
    ),
    (
        "Jenkins (VM Depot)",
        "VM Depot",
        "vmdepot-jenkins",
        "Jenkins",
        "Jenkins continuous integration server with Git, Maven and OpenJDK 7 on Ubuntu "
        "14.04, published on VM Depot by the community.",
        [
            ("1.565", "2014-05-29"),
            ("1.580", "2014-09-16"),
            ("1.596", "2015-01-12"),
            ("1.609", "2015-04-16"),
        ],
    ),
    (
        "Docker on Ubuntu (VM Depot)",
        "VM Depot",
        "vmdepot-docker",
        "Docker",
        "Ubuntu Server 14.04 with the Docker engine installed and enabled, published on VM "
        "Depot by the community.",
        [
            ("1.2.0", "2014-08-25"),
            ("1.3.1", "2014-10-17"),
            ("1.4.1", "2014-12-15"),
            ("1.5.0", "2015-02-11"),
        ],
    ),
]

COMMUNITY_TERMS = {
    "Bitnami": ("https://bitnami.com/terms", "https://bitnami.com/privacy"),
    "VM Depot": (
        "http://vmdepot.msopentech.com/TermsOfUse",
        "http://vmdepot.msopentech.com/Privacy",
    ),
}


def publisher_hash(publisher: str) -> str:
    """A stable 32-hex-digit prefix for community publishers (no real hash exists)."""
    return hashlib.md5(publisher.encode("utf-8")).hexdigest()


def community_images() -> list[dict]:
    images = []
    for family, publisher, stem, app, description, versions in COMMUNITY_FAMILIES:
        eula, privacy = COMMUNITY_TERMS[publisher]
        for version, date in versions:
            images.append(
                os_image(
                    name=f"{publisher_hash(publisher)}__{stem}-{version}-ubuntu-14.04",
                    family=family,
                    label=f"{app} {version} on Ubuntu 14.04 ({publisher})",
                    description=description,
                    os="Linux",
                    category="Community",
                    publisher=publisher,
                    date=date,
                    hour="18",
                    size_gb=30,
                    blob_root=f"{VMDEPOT_BLOB}/linuximages",
                    eula=eula,
                    icon=stem,
                    location="West US",
                    privacy=privacy,
                    vm_size="Small",
                )
            )
    return images


# ------------------------------------------------------------------------- VM images

SQL_VM_FAMILIES = [
    (
        "SQL Server 2014 Enterprise Optimized for Transactional Workloads on Windows Server "
        "2012 R2",
        "OLTP",
        "transactional (OLTP) workloads: data files are on a read-cached data disk and the "
        "transaction log on an uncached log disk",
        [("data", "ReadOnly", 1023), ("log", "None", 1023)],
        "Standard_D13",
        [
            ("2014RTM", "12.0.2430.0", "2014-08-22"),
            ("2014RTM", "12.0.2456.0", "2014-11-14"),
            ("2014RTM", "12.0.2480.0", "2015-02-19"),
        ],
    ),
    (
        "SQL Server 2014 Enterprise Optimized for Data Warehousing Workloads on Windows "
        "Server 2012 R2",
        "DW",
        "data warehousing workloads: data files are striped over two read-cached data "
        "disks, with separate disks for the transaction log and tempdb",
        [
            ("data", "ReadOnly", 1023),
            ("data", "ReadOnly", 1023),
            ("log", "None", 1023),
            ("tempdb", "ReadOnly", 512),
        ],
        "Standard_D14",
        [
            ("2014RTM", "12.0.2430.0", "2014-08-23"),
            ("2014RTM", "12.0.2456.0", "2014-11-15"),
            ("2014SP1", "12.0.4100.1", "2015-05-22"),
        ],
    ),
]


def vm_images() -> list[dict]:
    images = []
    for family, workload, purpose, disks, vm_size, builds in SQL_VM_FAMILIES:
        for release, build, date in builds:
            images.append(
                vm_image(
                    name=(
                        f"{HASH_SQL}__SQL-Server-{release}-{build}-{workload}-ENU-Win2012R2-"
                        f"{servicing(date)}"
                    ),
                    family=family,
                    label=f"SQL Server 2014 {release[4:]} {workload} ({build}), {month_name(date)}",
                    description=(
                        f"SQL Server 2014 Enterprise ({build}) on Windows Server 2012 R2, "
                        f"configured for {purpose}. The SQL Server license is included in the "
                        "hourly price of the virtual machine."
                    ),
                    os="Windows",
                    publisher="Microsoft SQL Server Group",
                    date=date,
                    hour="07",
                    os_size_gb=127,
                    data_disks=disks,
                    eula=SQL_EULA,
                    icon="SQLServer2014",
                    is_premium=True,
                    privacy=MS_PRIVACY,
                    pricing=(
                        "https://azure.microsoft.com/pricing/details/virtual-machines/"
                        "sql-server-enterprise/"
                    ),
                    vm_size=vm_size,
                )
            )
    oracle_db = [
        ("12.1.0.1", "2014-07-10"),
        ("12.1.0.2", "2014-12-05"),
        ("12.1.0.2", "2015-06-17"),
    ]
    for version, date in oracle_db:
        images.append(
            vm_image(
                name=f"{HASH_ORACLE}__Oracle-Database-{version}-SE-OL6-{compact(date)}",
                family="Oracle Database 12c Standard Edition on Oracle Linux 6",
                label=f"Oracle Database {version} Standard Edition, {month_name(date)}",
                description=(
                    f"Oracle Database {version} Standard Edition on Oracle Linux 6, with the "
                    "database files on a separate data disk. The Oracle license is included "
                    "in the hourly price of the virtual machine."
                ),
                os="Linux",
                publisher="Oracle",
                date=date,
                hour="08",
                os_size_gb=30,
                data_disks=[("oradata", "None", 128)],
                eula=ORACLE_EULA,
                icon="OracleDatabase",
                is_premium=True,
                privacy=ORACLE_PRIVACY,
                pricing="https://azure.microsoft.com/pricing/details/virtual-machines/",
                vm_size="Large",
            )
        )
    return images


def gallery() -> dict:
    images = (
        windows_images()
        + sql_images()
        + ubuntu_images()
        + centos_images()
        + suse_images()
        + oracle_images()
        + debian_images()
        + community_images()
        + vm_images()
    )
    mark_show_in_gui(images)
    return {"images": images}


def main() -> None:
    sys.stdout.write(json.dumps(gallery(), indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
