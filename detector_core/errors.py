"""Every failure the engine reports on purpose is one of these types.

The edges (CLI, Django views, Discord cogs) catch `HumanmadeError` and show its message;
anything else escaping the engine is a bug.
"""

from __future__ import annotations


class HumanmadeError(Exception):
    """Base of every error the engine raises deliberately; its message is for people."""


class ImageError(HumanmadeError):
    """The input cannot be scored as an image."""


class EmptyImageError(ImageError):
    """Zero bytes were given."""


class FileTooLargeError(ImageError):
    """The encoded file is larger than the configured byte limit."""


class NotAnImageError(ImageError):
    """The bytes are not an image format we can decode (whatever the file name says)."""


class UnsupportedImageError(ImageError):
    """A real image, but in a mode or format the engine cannot turn into RGB pixels."""


class CorruptImageError(ImageError):
    """The image is truncated or its data is damaged."""


class DecompressionBombError(ImageError):
    """The image declares more pixels than the configured limit (a decompression bomb)."""


class UnreadableSourceError(ImageError):
    """The given path or file object could not be read (missing, a directory, no permission)."""


class FetchError(HumanmadeError):
    """A URL could not be fetched safely."""


class BlockedURLError(FetchError):
    """The URL's scheme or address is not allowed (e.g. loopback or private networks)."""


class TooManyRedirectsError(FetchError):
    """The server redirected more often than allowed."""


class FetchTimeoutError(FetchError):
    """The server did not answer in time."""


class InvalidURLError(FetchError):
    """The text given is not a usable http(s) URL (malformed, no host, credentials, too long)."""


class HTTPStatusError(FetchError):
    """The server answered with a non-2xx status; `status` holds the code."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status

    def __reduce__(self) -> tuple[type, tuple[str, int]]:
        # Celery pickles task errors; the default reduce would drop `status`.
        return (type(self), (str(self), self.status))


class DownloadTooLargeError(FetchError, FileTooLargeError):
    """The response body exceeded the byte cap while streaming."""


class WeightsError(HumanmadeError):
    """The model weights are missing, damaged, or do not match the model card."""


class ImageTooSmallError(ImageError):
    """The image is too small for its pixels to say anything."""


class VideoError(ImageError):
    """The input cannot be scored as a video or animated image.

    A subclass of `ImageError` so that every edge that already shows image errors shows
    these too; each hostile case below is also a subclass of the matching image error.
    """


class UnsupportedVideoError(VideoError, UnsupportedImageError):
    """A container or codec outside the whitelist, or a pixel format that cannot become RGB."""


class NoVideoTrackError(VideoError, NotAnImageError):
    """A media file with no video track (audio only, whatever its extension says)."""


class CorruptVideoError(VideoError, CorruptImageError):
    """The video is truncated or damaged, or no frame in it can be decoded."""


class VideoTooLargeError(VideoError, FileTooLargeError):
    """The video file is larger than the configured byte limit."""


class VideoResolutionError(VideoError, DecompressionBombError):
    """The video's frames are larger than the configured resolution limit."""


class VideoTimeoutError(VideoError):
    """Decoding took longer than the configured time limit."""


class DecoderCrashedError(VideoError):
    """The decoding process died (a crash in the decoder, or it ran out of memory)."""


def error_code(exc: BaseException) -> str:
    """The stable snake_case code of an error, the same in the API and the CLI's --json:
    NotAnImageError -> 'not_an_image', BlockedURLError -> 'blocked_url'."""
    import re

    name = type(exc).__name__.removesuffix("Error") or "error"
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()
