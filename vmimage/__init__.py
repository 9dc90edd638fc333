"""`vmimage`: the VM image catalog from a terminal (upload, list, show, capture, VMs)."""

__version__ = "0.1.0"
