"""An upload handler that drops a file the moment it grows past HUMANMADE's MAX_UPLOAD_BYTES.

Django would otherwise stream any size to a temporary file before a view sees it. The
handler skips the rest of the file (the remaining bytes are read and discarded, never
stored) and notes why on the request, so the view can answer 400 with a clear message.
"""

from __future__ import annotations

from django.core.files.uploadhandler import FileUploadHandler, SkipFile

from .engine import human_bytes, max_upload_bytes

# Attribute set on the request when an upload was refused; the value is the message.
REFUSED_ATTR = "humanmade_upload_refused"


class SizeLimitUploadHandler(FileUploadHandler):
    def __init__(self, request=None) -> None:
        super().__init__(request)
        self.limit = max_upload_bytes()

    def new_file(self, field_name, file_name, content_type, content_length, *args, **kwargs):
        super().new_file(field_name, file_name, content_type, content_length, *args, **kwargs)
        if content_length is not None and content_length > self.limit:  # declared per part
            self._refuse()

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > self.limit:
            self._refuse()
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handlers store the file

    def _refuse(self) -> None:
        if self.request is not None:
            setattr(
                self.request,
                REFUSED_ATTR,
                f"The file is larger than the upload limit of {human_bytes(self.limit)}.",
            )
        raise SkipFile
