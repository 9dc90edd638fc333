"""Upload a local disk as a page blob: the CLI's uploader (`vmimage.upload`), re-exported
for make run, the tests and the benchmarks.

Created at full size with `uploadstate=uploading`, written in parallel 4 MiB pages
(zero chunks and the holes of a sparse file skipped), then `uploadstate=complete`, so
the catalog judges the disk once, whole, without waiting for a settle window.
"""

from __future__ import annotations

from vmimage.upload import CHUNK, data_chunks, upload_page_blob

__all__ = ["CHUNK", "data_chunks", "upload_page_blob"]
