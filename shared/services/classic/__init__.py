"""The classic Service Management API over the catalog: one module per classic resource.

- `protocol`: what every call shares (x-ms-version, the subscription, error codes);
- `xmldoc`: the XML on the wire (writing documents, reading bodies safely);
- `images`: OS images (List, Get, Get Details, Add, Update, Delete OS Image);
- `vm_images`: VM images (List, Get, Create, Update, Delete VM Image);
- `operations`: asynchronous calls recorded under their request id (Get Operation Status);
- `captures`: Capture Role and Capture VM Image bodies as catalog captures;
- `disks`: the disk blobs of ours a request names, validated and leased;
- `certificates`: who may call (a management certificate or a function key), and
  List/Get/Add/Delete Management Certificate.

The entry points (`functions/classic/`) only parse, call one of these and
serialize. The names below are re-exported for callers that want the whole API.
"""

from __future__ import annotations

from shared.services.classic.captures import (
    CAPTURE_AS_VM_IMAGE as CAPTURE_AS_VM_IMAGE,
)
from shared.services.classic.captures import (
    CAPTURE_ROLE as CAPTURE_ROLE,
)
from shared.services.classic.captures import (
    parse_capture_operation as parse_capture_operation,
)
from shared.services.classic.disks import (
    GIB as GIB,
)
from shared.services.classic.disks import (
    InvalidMediaLink as InvalidMediaLink,
)
from shared.services.classic.disks import (
    MediaLinkNotFound as MediaLinkNotFound,
)
from shared.services.classic.disks import (
    OurDisk as OurDisk,
)
from shared.services.classic.disks import (
    blob_for_media_link as blob_for_media_link,
)
from shared.services.classic.disks import (
    our_disk as our_disk,
)
from shared.services.classic.disks import (
    probed as probed,
)
from shared.services.classic.disks import (
    register_leased as register_leased,
)
from shared.services.classic.images import (
    ADD_ELEMENTS as ADD_ELEMENTS,
)
from shared.services.classic.images import (
    UPDATE_ELEMENTS as UPDATE_ELEMENTS,
)
from shared.services.classic.images import (
    NewOSImage as NewOSImage,
)
from shared.services.classic.images import (
    Remover as Remover,
)
from shared.services.classic.images import (
    add_os_image as add_os_image,
)
from shared.services.classic.images import (
    delete_image as delete_image,
)
from shared.services.classic.images import (
    get_image_of_kind as get_image_of_kind,
)
from shared.services.classic.images import (
    images_xml as images_xml,
)
from shared.services.classic.images import (
    list_images_of_kind as list_images_of_kind,
)
from shared.services.classic.images import (
    media_link as media_link,
)
from shared.services.classic.images import (
    new_image_details as new_image_details,
)
from shared.services.classic.images import (
    os_image_details_xml as os_image_details_xml,
)
from shared.services.classic.images import (
    os_image_xml as os_image_xml,
)
from shared.services.classic.images import (
    parse_add_os_image as parse_add_os_image,
)
from shared.services.classic.images import (
    parse_update_os_image as parse_update_os_image,
)
from shared.services.classic.images import (
    update_changes as update_changes,
)
from shared.services.classic.images import (
    update_os_image as update_os_image,
)
from shared.services.classic.operations import (
    ADD_OS_IMAGE as ADD_OS_IMAGE,
)
from shared.services.classic.operations import (
    CREATE_VM_IMAGE as CREATE_VM_IMAGE,
)
from shared.services.classic.operations import (
    DELETE_OS_IMAGE as DELETE_OS_IMAGE,
)
from shared.services.classic.operations import (
    DELETE_VM_IMAGE as DELETE_VM_IMAGE,
)
from shared.services.classic.operations import (
    UPDATE_OS_IMAGE as UPDATE_OS_IMAGE,
)
from shared.services.classic.operations import (
    UPDATE_VM_IMAGE as UPDATE_VM_IMAGE,
)
from shared.services.classic.operations import (
    ClassicCall as ClassicCall,
)
from shared.services.classic.operations import (
    OperationLog as OperationLog,
)
from shared.services.classic.operations import (
    operation_xml as operation_xml,
)
from shared.services.classic.operations import (
    recorded as recorded,
)
from shared.services.classic.protocol import (
    SUBSCRIPTION_SETTING as SUBSCRIPTION_SETTING,
)
from shared.services.classic.protocol import (
    MissingOrIncorrectVersionHeader as MissingOrIncorrectVersionHeader,
)
from shared.services.classic.protocol import (
    SubscriptionForbidden as SubscriptionForbidden,
)
from shared.services.classic.protocol import (
    check_subscription as check_subscription,
)
from shared.services.classic.protocol import (
    check_version as check_version,
)
from shared.services.classic.protocol import (
    classic_code as classic_code,
)
from shared.services.classic.protocol import (
    comp_media as comp_media,
)
from shared.services.classic.protocol import (
    configured_subscription as configured_subscription,
)
from shared.services.classic.protocol import (
    new_request_id as new_request_id,
)
from shared.services.classic.vm_images import (
    CREATE_VM_ELEMENTS as CREATE_VM_ELEMENTS,
)
from shared.services.classic.vm_images import (
    UPDATE_VM_ELEMENTS as UPDATE_VM_ELEMENTS,
)
from shared.services.classic.vm_images import (
    NewDataDisk as NewDataDisk,
)
from shared.services.classic.vm_images import (
    NewVMImage as NewVMImage,
)
from shared.services.classic.vm_images import (
    VmImageFilter as VmImageFilter,
)
from shared.services.classic.vm_images import (
    VmImageUpdate as VmImageUpdate,
)
from shared.services.classic.vm_images import (
    create_vm_image as create_vm_image,
)
from shared.services.classic.vm_images import (
    data_disk_elements as data_disk_elements,
)
from shared.services.classic.vm_images import (
    list_vm_images as list_vm_images,
)
from shared.services.classic.vm_images import (
    parse_create_vm_image as parse_create_vm_image,
)
from shared.services.classic.vm_images import (
    parse_update_vm_image as parse_update_vm_image,
)
from shared.services.classic.vm_images import (
    update_vm_image as update_vm_image,
)
from shared.services.classic.vm_images import (
    vm_image_xml as vm_image_xml,
)
from shared.services.classic.vm_images import (
    vm_images_xml as vm_images_xml,
)
from shared.services.classic.vm_images import (
    vm_update_changes as vm_update_changes,
)
from shared.services.classic.xmldoc import (
    ACCEPTED_NAMESPACES as ACCEPTED_NAMESPACES,
)
from shared.services.classic.xmldoc import (
    MAX_BODY_BYTES as MAX_BODY_BYTES,
)
from shared.services.classic.xmldoc import (
    NS as NS,
)
from shared.services.classic.xmldoc import (
    XSI as XSI,
)
from shared.services.classic.xmldoc import (
    InvalidXmlBody as InvalidXmlBody,
)
from shared.services.classic.xmldoc import (
    add as add,
)
from shared.services.classic.xmldoc import (
    add_all as add_all,
)
from shared.services.classic.xmldoc import (
    children as children,
)
from shared.services.classic.xmldoc import (
    document as document,
)
from shared.services.classic.xmldoc import (
    error_xml as error_xml,
)
from shared.services.classic.xmldoc import (
    iso8601 as iso8601,
)
from shared.services.classic.xmldoc import (
    parse_bool as parse_bool,
)
from shared.services.classic.xmldoc import (
    parse_date as parse_date,
)
from shared.services.classic.xmldoc import (
    q as q,
)
from shared.services.classic.xmldoc import (
    read_element as read_element,
)
from shared.services.classic.xmldoc import (
    read_root as read_root,
)
from shared.services.classic.xmldoc import (
    split_tag as split_tag,
)
from shared.services.classic.xmldoc import (
    text_field as text_field,
)
from shared.services.classic.xmldoc import (
    xml_text as xml_text,
)
