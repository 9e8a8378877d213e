"""Checks on input paths, so that a missing or unreadable file gives one clear line; what a file is by its first
bytes (an image format, a video container, a camera raw), and an image file read whole only once they say so."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from semflow.errors import InputError, ResourceError
from semflow.io.image_limits import oversize_reason

if TYPE_CHECKING:
    import cv2

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts")
"""What a folder's video files are named (``batch`` takes a folder of them; ``segment`` names them)."""


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp")
"""The image files semflow reads and writes (a folder's frames, flow's inputs, pictures)."""


def is_video_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` has a video file extension."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


STILL_IMAGE_BRANDS = frozenset({b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
"""``ftyp`` brands of ISO media files that hold images (AVIF, HEIF/HEIC), not videos: every HEIF file (AVIF
included) lists ``mif1`` or ``msf1`` among its brands, whatever its major brand (``avci``, ``mif2``, ``jpeg``...)."""
FTYP_READ = 256
"""The most bytes (of a file's start) :func:`starts_as_video` and :func:`image_format` look at: an ``ftyp`` box's
brands lie within them."""


def ftyp_brands(head: bytes) -> set[bytes] | None:
    """The brands, major and compatible, of the ISO media ``ftyp`` box that ``head`` (a file's first bytes)
    starts with; None when it starts with none (box size, "ftyp", major brand, minor version, compatible
    brands of 4 bytes each)."""
    if head[4:8] != b"ftyp":
        return None
    box = head[:max(16, int.from_bytes(head[:4], "big"))]
    return {box[8:12]} | {box[i:i + 4] for i in range(16, len(box) - 3, 4)}


def video_container(head: bytes) -> str | None:
    """The video container whose file ``head`` (its first :data:`FTYP_READ` bytes) starts: "MP4 or MOV" (an
    ``ftyp`` box none of whose brands, major or compatible, is an image's: :data:`STILL_IMAGE_BRANDS`, nor a
    Canon CR3 photo's: :func:`camera_raw`), "Matroska or WebM", "AVI"; None for any other start."""
    brands = ftyp_brands(head)
    if brands is not None:
        return "MP4 or MOV" if not brands & STILL_IMAGE_BRANDS and camera_raw(head) is None else None
    if head.startswith(b"\x1aE\xdf\xa3"):
        return "Matroska or WebM"
    return "AVI" if (head[:4], head[8:12]) == (b"RIFF", b"AVI ") else None


def starts_as_video(path: str | os.PathLike) -> bool:
    """Whether the first bytes of ``path`` are a video container's (:func:`video_container`), whatever its
    name; False for what cannot be read."""
    try:
        with open(path, "rb") as file:
            return video_container(file.read(FTYP_READ)) is not None
    except OSError:
        return False


TIFF_HEADS = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")
"""How a TIFF (the first two) and a BigTIFF (the last two) begin, in either byte order."""
IMAGE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"BM", "BMP"),
    *zip(TIFF_HEADS, ("TIFF", "TIFF", "BigTIFF", "BigTIFF")), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
    (b"\0\0\0\x0cjP  \r\n\x87\n", "JPEG 2000"), (b"\xffO\xffQ", "JPEG 2000"), (b"\0\0\0\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"\xff\n", "JPEG XL"), (b"v/1\x01", "OpenEXR"), (b"#?RADIANCE", "Radiance HDR"), (b"#?RGBE", "Radiance HDR"),
    (b"Y\xa6j\x95", "Sun raster"), (b"PF", "PFM"), (b"Pf", "PFM"), *((b"P%d" % k, "PNM") for k in range(1, 8)))
"""How the files of the image formats OpenCV's decoders read begin (cv2.imread's list: PNG, JPEG, BMP, TIFF,
GIF, JPEG 2000 as a file and as a bare codestream, JPEG XL likewise, OpenEXR, Radiance HDR, Sun raster, PFM,
PBM/PGM/PPM and PAM: P1 to P7), each with its name; WebP and AVIF/HEIF are told by :func:`image_format`."""


def image_format(head: bytes, *, least: int = 0) -> str | None:
    """The name of the image format (:data:`IMAGE_SIGNATURES`, "WebP": RIFF with WEBP, "AVIF or HEIF": an
    ``ftyp`` box of a :data:`STILL_IMAGE_BRANDS` brand) that ``head``, a file's first :data:`FTYP_READ`
    bytes, starts as; None for any other start (a file no image decoder semflow uses would read), and for
    a signature shorter than ``least`` bytes (two, such as BMP's "BM", begin other files by chance)."""
    brands = ftyp_brands(head)
    if brands is not None:
        return "AVIF or HEIF" if brands & STILL_IMAGE_BRANDS else None
    if (head[:4], head[8:12]) == (b"RIFF", b"WEBP"):
        return "WebP"
    return next((name for magic, name in IMAGE_SIGNATURES if len(magic) >= least and head.startswith(magic)), None)


RAW_SIGNATURES = ((b"II\x1a\0\0\0HEAPCCDR", "Canon CRW"), (b"FUJIFILMCCD-RAW", "Fujifilm RAF"),
                  (b"IIRO", "Olympus ORF"), (b"IIRS", "Olympus ORF"), (b"MMOR", "Olympus ORF"), (b"IIU\0", "Panasonic RW2"))
"""How camera raw files that are no TIFF begin, each with its name (a TIFF-based raw, CR2, NEF, ARW, DNG, is told
from its first directory: :mod:`semflow.io.raw_tiff`)."""


def camera_raw(head: bytes) -> str | None:
    """The camera raw format whose file ``head`` (its first :data:`FTYP_READ` bytes) starts, which no decoder
    semflow uses reads: "Canon CR3" (an ISO media ``ftyp`` box of brand ``crx `` whose compressor version box,
    CNCV at byte 0x40, is not ``CanonCRM...``, a Canon Cinema RAW Light movie's, of the same brand) or one of
    :data:`RAW_SIGNATURES`; None for any other start."""
    brands = ftyp_brands(head)
    if brands is not None:
        return "Canon CR3" if b"crx " in brands and b"CanonCRM" not in head else None
    return next((name for magic, name in RAW_SIGNATURES if head.startswith(magic)), None)


def camera_raw_reason(raw: str) -> str:
    """Why a camera raw image of the format ``raw`` ("Canon CR3", "DNG") is refused, after its file's name: what
    to do says a raw converter and RGB, for a TIFF of a sensor's data (and a DNG) is a TIFF already."""
    return (f"a camera raw image ({raw}), which semflow cannot read; convert it with a raw converter (darktable,"
            " RawTherapee, dcraw...) to an RGB PNG or TIFF")


def media_kind(head: bytes) -> str | None:
    """What a file that starts with ``head`` (its first :data:`FTYP_READ` bytes) is when it is a video, an image
    or a camera raw image, in words ("an MP4 or MOV video", "a PNG image", "a camera raw image (Canon CR3)"),
    else None: said of a file given in another's place (weights), so an image is named by a signature of
    three bytes or more (a safetensors file starts with its header's length, which may read "BM")."""
    if (video := video_container(head)) is not None:
        return f"{with_article(video)} video"
    if (image := image_format(head, least=3)) is not None:
        return f"{with_article(image)} image"
    if (raw := camera_raw(head)) is not None:
        return f"a camera raw image ({raw})"
    return "a RIFF file (such as a WAV sound)" if head[:4] == b"RIFF" else None


def with_article(name: str) -> str:
    """``name`` after "a" or "an", as it is read: "an AVI", "an MP4 or MOV" (an acronym read letter by
    letter), "a Matroska", "a PNG"."""
    first = name.split()[0]
    vowel = first[0] in "AEIOU" or (first.isupper() and first[0] in "FHLMNRSX")
    return f"{'an' if vowel else 'a'} {name}"


NO_IMAGE_START = "it does not start as any image format semflow reads"
"""Why :func:`image_file_bytes` refuses a file before reading it whole."""


def image_file_bytes(path: str | os.PathLike, *, palette: bool = False) -> bytes:
    """The bytes of the image file ``path``, read whole only once its first bytes are an image's, of a format
    OpenCV decodes (:func:`image_format`), or with ``palette`` of any Pillow identifies (whose palette images
    are read as labels: a TGA, a PCX); before that, for any other file (data or a video of gigabytes),
    :class:`InputError` (which names a camera raw image as one: :func:`camera_raw`); likewise for a file far
    larger than any image of the size its header declares, or than OpenCV decodes
    (:func:`~semflow.io.image_limits.oversize_reason`: a small image's start, then gigabytes)."""
    with open(path, "rb") as file:
        head = file.read(FTYP_READ)
        if image_format(head) is None and not (palette and pillow_identifies(path)):
            if (raw := camera_raw(head)) is not None:
                raise InputError(f"{path}: {camera_raw_reason(raw)}")
            raise InputError(f"{path}: cannot decode as an image ({NO_IMAGE_START if head else 'the file is empty'})")
        if (why := oversize_reason(file, head, os.fstat(file.fileno()).st_size)) is not None:
            raise InputError(f"{path}: {why}")
        file.seek(0)
        return file.read()


def pillow_identifies(path: str | os.PathLike) -> bool:
    """Whether Pillow takes the file ``path`` for an image of a format it knows (it reads the header only, from
    a file of its own: closing its image closes the file it reads, which an open file handed to it would be)."""
    import warnings

    from PIL import Image, UnidentifiedImageError  # (here: `semflow --help` imports this module)

    try:
        with warnings.catch_warnings():  # (untrusted headers make Pillow warn)
            warnings.simplefilter("ignore")
            Image.open(path).close()
    except UnidentifiedImageError:
        return False
    except Exception:  # noqa: BLE001 - known, but its header is corrupt or declares too much: decoding says so
        return True
    return True


def is_empty_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file of 0 bytes (False where it cannot be looked at)."""
    try:
        return os.stat(path).st_size == 0
    except (OSError, ValueError):
        return False


def is_image_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` has an image file extension."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


AUDIO_EXTENSIONS = frozenset({".mp3", ".m4a", ".aac", ".flac", ".oga", ".opus", ".wav", ".wma", ".aiff"})
"""Names of sound files: one with cover art reads as a video of one frame (not .ogg: a Theora video may be one)."""


def too_few_frames(path: str | os.PathLike, frames: int) -> InputError:
    """The one-line error for a video or folder of ``frames`` < 2 frames; a single image is pointed at
    ``semflow flow`` (two images) and at a folder of frames."""
    hint = ("; for the flow between two images use `semflow flow IMAGE1 IMAGE2`, for a sequence give the folder"
            " of its frames" if frames == 1 and is_image_path(path) and Path(path).is_file() else "")
    if frames == 1 and Path(path).suffix.lower() in AUDIO_EXTENSIONS:
        hint = " (a sound file: its one picture is its cover art)"
    return InputError(f"{path}: need at least 2 frames to compute flow, got {frames}{hint}")


def require_file(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path; raise :class:`InputError` if it is missing, not a file or unreadable."""
    path = Path(path)
    if not path.exists():
        raise missing(path, "file")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: not readable")
    return path


def missing(path: Path, what: str = "file or folder") -> InputError:
    """The one-line error for a ``path`` that does not exist: ``no such {what}``, or what a link there is."""
    if not path.is_symlink():
        return InputError(f"{path}: no such {what}")
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return InputError(f"{path}: a symbolic link in a loop (no {what} at its end)")
    return InputError(f"{path}: a symbolic link to nothing (no {what} at {os.readlink(path)})")


def open_regular_file(path: str | os.PathLike) -> int:
    """A descriptor of ``path`` open for reading, opened without blocking on a FIFO; :class:`InputError`
    when it cannot be opened or is not a regular file (a FIFO, a device), :class:`ResourceError` when the
    process has no descriptor to spare. The caller closes it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # (a FIFO would block here)
    except OSError as exc:
        if exc.errno == errno.EMFILE:
            raise too_many_open_files(path) from None
        raise InputError(f"{path}: cannot open ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InputError(f"{path}: not a regular file")
    return fd


PLAYLIST_HEADS = (b"#EXTM3U", b"ffconcat version")
"""How the playlists FFmpeg reads in place of a video begin (HLS, its concat demuxer's): text naming other files."""


def is_playlist(fd: int) -> bool:
    """Whether the open file ``fd`` begins as a playlist (:data:`PLAYLIST_HEADS`)."""
    return os.pread(fd, 16, 0).startswith(PLAYLIST_HEADS)


def open_capture(path: str | os.PathLike) -> cv2.VideoCapture:
    """``cv2.VideoCapture`` of the video file ``path``, named by its real absolute path: a name such as
    ``concat:a|b`` or ``http:HOST`` (FFmpeg protocols) is a file, and OpenCV opens the file checked here (a
    ``link/../x`` named another by its text). A playlist (:data:`PLAYLIST_HEADS`) is an :class:`InputError`:
    FFmpeg would read the files it names in its place (any of the user's videos, by its absolute path); so
    is a file replaced meanwhile. A name whose bytes are not UTF-8 (OpenCV's binding crashes the process on
    one: SIGSEGV) is opened through ``/proc/self/fd`` (``/dev/fd``), whose name is plain; :class:`InputError` too for what
    cannot be opened or is no file."""
    import cv2  # (here: `semflow --help` imports this module, not OpenCV)

    fd = open_regular_file(path)
    try:
        if is_playlist(fd):
            raise InputError(f"{path}: a playlist (HLS or ffconcat), which names other files to read in its place,"
                             " not a video; semflow reads video files only")
        name = os.path.realpath(path)
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            name = f"/proc/self/fd/{fd}" if os.path.isdir("/proc/self/fd") else f"/dev/fd/{fd}"  # (FFmpeg opens
            # its own descriptor of it; /dev/fd where there is no /proc, as on macOS)
        opened, named = os.fstat(fd), os.stat(name)
        if (opened.st_dev, opened.st_ino) != (named.st_dev, named.st_ino):
            raise InputError(f"{path}: replaced while it was being opened; run again")
        return cv2.VideoCapture(name)
    except OSError as exc:
        raise InputError(f"{path}: cannot open ({exc.strerror})") from None
    finally:
        os.close(fd)


def ignores_case(folder: Path) -> bool:
    """Whether names in ``folder`` (or the nearest folder above it that exists) are told apart regardless of
    case (macOS, Windows): the nearest existing folder with a letter in its name is found under that name
    with its case swapped."""
    for path in (Path(os.path.abspath(folder)), *Path(os.path.abspath(folder)).parents):
        if path.name.lower() != path.name.upper() and os.path.lexists(path):
            try:
                return os.path.samefile(path, path.with_name(path.name.swapcase()))
            except OSError:  # (not there under the other case: names are told apart)
                return False
    return False


def name_key(folder: str | os.PathLike) -> Callable[[str | os.PathLike], str]:
    """How paths below ``folder`` are told apart: as strings, case-folded where its file system ignores case
    (:func:`ignores_case`: a.png and A.png are one file on macOS)."""
    fold = ignores_case(Path(folder))
    return lambda path: str(path).casefold() if fold else str(path)


def path_identity(path: str | os.PathLike) -> list[int | str] | None:
    """What tells that a file given as an input changed: its [size in bytes, modification time in ns];
    ``["folder"]`` for a folder (its files are not compared: a folder of given flows or masks may gain the
    files a run was missing); None when ``path`` cannot be read."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return ["folder"] if stat.S_ISDIR(info.st_mode) else [info.st_size, info.st_mtime_ns]


def out_of_descriptors(spare: int = 4) -> bool:
    """Whether this process is at its limit of open files (``ulimit -n``): ``spare`` more cannot be opened."""
    opened: list[int] = []
    try:
        for _ in range(spare):
            opened.append(os.open(os.devnull, os.O_RDONLY))
    except OSError as exc:
        return exc.errno == errno.EMFILE
    finally:
        for fd in opened:
            os.close(fd)
    return False


def too_many_open_files(path: str | os.PathLike) -> ResourceError:
    """The one-line error for ``path`` that could not be opened because the process is at its limit of
    open files (``ulimit -n``)."""
    import resource

    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return ResourceError(f"{path}: cannot be opened: too many open files (EMFILE: this process may open {limit};"
                         " raise it with `ulimit -n`)")
