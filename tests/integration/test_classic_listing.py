"""The classic lists read from a real table (one query, selected columns) write the same bytes
as the images read whole and written an element at a time."""

from __future__ import annotations

import uuid

from azure.data.tables import TableServiceClient

from shared.adapters.catalog_table import ImageCatalog
from shared.domain.images import ImageKind
from shared.services.classic import images as os_images
from shared.services.classic import vm_images
from shared.services.classic.xmldoc import joined
from tests.unit.test_classic_listing import varied_os_images, varied_vm_images


def test_lists_from_the_table_are_byte_for_byte_those_of_the_element_writer(
    azurite_connection: str,
) -> None:
    service = TableServiceClient.from_connection_string(azurite_connection)
    catalog = ImageCatalog(service.create_table(f"cls{uuid.uuid4().hex[:12]}"))
    for image in [*varied_os_images(), *varied_vm_images()]:
        catalog.add(image)

    listed = joined(os_images.list_os_images_body(catalog))
    assert listed == os_images.images_xml(os_images.iter_images_of_kind(catalog, ImageKind.OS))
    assert listed.count(b"<OSImage>") == len(varied_os_images())

    for wanted in (vm_images.VmImageFilter(), vm_images.VmImageFilter(location="north europe")):
        listed = joined(vm_images.list_vm_images_body(catalog, wanted))
        before = vm_images.vm_images_xml(vm_images.iter_vm_images(catalog, wanted))
        assert listed == before
    assert listed.count(b"<VMImage>") == 1
