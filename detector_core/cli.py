"""The `humanmade` command: score images, describe the model, and run training tools.

    humanmade score photo.jpg clip.mp4 https://example.com/a.png some/folder/ [--json]
    humanmade info [--weights FILE] [--json]
    humanmade train|evaluate|benchmark|data ...   (arguments go to those tools unchanged)

Failures the engine reports on purpose (`HumanmadeError`) are shown as one-line messages,
never as tracebacks. Exit codes: 0 all went well, 1 at least one input failed, 2 usage
error or unusable weights, 130 interrupted.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .argtypes import int_at_least, report_error
from .errors import HumanmadeError, UnreadableSourceError, WeightsError, error_code
from .headline import cutoff_percent, reasons_beyond_evidence
from .library_notes import library_notes
from .verdict import BandCutoffs

if TYPE_CHECKING:  # torch-heavy; imported inside the subcommands so `--help` stays quick
    from .clip_verdict import ClipVerdict
    from .detector import Detector
    from .verdict import Verdict

    Result = Verdict | ClipVerdict

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

IMAGE_SUFFIXES = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".png",
        ".webp",
        ".gif",
        ".bmp",
        ".tif",
        ".tiff",
        ".heic",
        ".heif",
        ".avif",
        # Videos and animated PNG; animated GIF and WebP are recognised by their contents.
        ".mp4",
        ".m4v",
        ".mov",
        ".webm",
        ".mkv",
        ".avi",
        ".apng",
    }
)
BATCH_SIZE = 8
PROGRESS_MIN_INPUTS = 6  # more inputs than this, or any folder, shows a progress bar

# Subcommands whose arguments are handed to another module's `main(argv)` untouched.
PASSTHROUGH = {
    "train": ("detector_core.training.train", "train a model and write weights with a model card"),
    "evaluate": ("detector_core.training.evaluate", "evaluate weights on a dataset split"),
    "benchmark": ("detector_core.benchmark", "benchmark the detector"),
    "benchmark-video": (
        "detector_core.video_benchmark",
        "benchmark clips: decode vs score time of synthetic 1080p clips",
    ),
    "loso": ("detector_core.training.loso", "leave-one-generator-family-out report"),
    "setup": ("detector_core.setup", "fetch the CLIP model once (needs the network)"),
    "fuse": (
        "detector_core.training.fuse",
        "train the CLIP head, fuse it with a trace network, write a release",
    ),
    "calibrate": (
        "detector_core.training.calibrate",
        "refit calibration on reviewed images from a site",
    ),
    "gate": ("detector_core.training.gate", "compare a candidate model with the current one"),
    "release": (
        "detector_core.training.release",
        "gate a candidate and write it with its model card",
    ),
    "data": (
        "detector_core.training.corpus",
        "build the extra training corpus (or the video corpus) from registries",
    ),
    "video-eval": (
        "detector_core.training.video_eval",
        "score the video corpus: frame and clip AUC on held-out sources; fit the clip rule",
    ),
}


class EmptyFolderError(UnreadableSourceError):
    """A folder given to `humanmade score` holds no image files."""


# --------------------------------------------------------------------------- argument parsing


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="humanmade",
        description="On-premise detection of AI-generated images. "
        "Scores are advisory probabilities, not proof.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    score = sub.add_parser(
        "score",
        help="score image and video files, folders and http(s) URLs",
        description="Score images, videos (MP4/MOV, WebM/Matroska, AVI) and animated GIF, WebP "
        "and PNG for signs of AI generation. Prints one line per input (for a clip: its "
        "verdict from sampled frames; --json lists each frame); exit code 1 if any input "
        "failed.",
    )
    score.add_argument(
        "inputs",
        nargs="+",
        metavar="PATH|URL|DIR",
        help="image or video files, folders or http(s) URLs",
    )
    score.add_argument("--json", action="store_true", help="print one JSON object per line")
    score.add_argument(
        "--weights", type=Path, default=None, help="a .safetensors file (default: the release)"
    )
    score.add_argument(
        "--max-tiles",
        type=int_at_least(1),
        default=None,
        metavar="N",
        help="score at most N tiles per image (default: 16)",
    )
    score.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="HOST",
        help="a host name, IP or CIDR network that URLs may reach even though it is private "
        "or loopback (repeatable)",
    )
    score.add_argument(
        "--heatmap",
        type=Path,
        default=None,
        metavar="OUT",
        help="write each image's patch heatmap: OUT.png (or .jpg, .webp) for a single image, "
        "else a folder that receives NAME.heatmap.png per image; prints where each went",
    )
    score.add_argument("--recursive", "-r", action="store_true", help="descend into subfolders")
    score.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    score.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="also print what the image library said about a file (damaged EXIF and the "
        "like) as a note under its verdict; --json always includes these notes",
    )
    score.add_argument(
        "--device",
        default="cpu",
        help="cpu (default), cuda (ONNX Runtime's CUDA provider, the gpu extra), or auto",
    )

    info = sub.add_parser(
        "info",
        help="describe the model weights and their validation figures",
        description="Print the model card summary of a weights file.",
    )
    info.add_argument("--weights", type=Path, default=None, help="a .safetensors file")
    info.add_argument("--json", action="store_true", help="print one JSON object")

    for name, (_, help_text) in PASSTHROUGH.items():
        # Only listed here for `humanmade --help`; main() hands their argv on before parsing.
        sub.add_parser(name, help=f"{help_text} (see `humanmade {name} --help`)", add_help=False)
    return parser


def _package_version() -> str:
    try:
        from importlib.metadata import version

        return version("humanmade")
    except Exception:  # not installed as a distribution (e.g. a source checkout)
        return "unknown"


# --------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in PASSTHROUGH:
            return _passthrough(argv[0], argv[1:])
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, --version, usage errors
            return _exit_code(exc)
        if args.command == "score":
            return _cmd_score(args, f"{parser.prog} score")
        if args.command == "info":
            return _cmd_info(args)
        parser.error(f"unknown command {args.command!r}")  # pragma: no cover
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `humanmade score ... | head`
        _silence_stdout()
        return EXIT_FAILED
    except SystemExit as exc:
        return _exit_code(exc)
    return EXIT_USAGE  # pragma: no cover


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return EXIT_OK
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return EXIT_FAILED


def _silence_stdout() -> None:
    # Python would otherwise complain again when flushing stdout at exit.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _error(message: str) -> None:
    print(f"humanmade: error: {message}", file=sys.stderr)


def _passthrough(name: str, argv: list[str]) -> int:
    import importlib

    module_name = PASSTHROUGH[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        _error(f"`humanmade {name}` is not available in this installation.")
        return EXIT_USAGE
    try:
        return int(module.main(argv) or 0)
    except WeightsError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except HumanmadeError as exc:
        _error(str(exc))
        return EXIT_FAILED
    except SystemExit as exc:
        return _exit_code(exc)


# --------------------------------------------------------------------------- score


@dataclass(frozen=True)
class _Item:
    name: str  # as shown to people: the argument given, or folder/relative/path
    source: str  # a path or a URL
    is_url: bool = False
    error: HumanmadeError | None = None  # known to fail before scoring (e.g. an empty folder)


def _looks_like_url(text: str) -> bool:
    # Anything with a scheme goes to the fetcher, which refuses ftp:, file: etc. by name.
    return "://" in text and not os.path.exists(text)


def _folder_images(folder: Path, recursive: bool) -> list[Path]:
    found: list[Path] = []
    if recursive:
        for root, dirs, files in os.walk(folder, followlinks=False):
            dirs.sort()
            found.extend(Path(root, f) for f in files if Path(f).suffix.lower() in IMAGE_SUFFIXES)
    else:
        with os.scandir(folder) as entries:
            for entry in entries:
                if Path(entry.name).suffix.lower() in IMAGE_SUFFIXES and entry.is_file():
                    found.append(Path(entry.path))
    return sorted(found, key=lambda p: p.relative_to(folder).parts)


def expand_inputs(inputs: Sequence[str], recursive: bool = False) -> tuple[list[_Item], bool]:
    """Turn the command-line inputs into items to score; also says whether any was a folder."""
    items: list[_Item] = []
    saw_folder = False
    for text in inputs:
        if _looks_like_url(text):
            items.append(_Item(text, text, is_url=True))
            continue
        path = Path(text)
        if not path.is_dir():
            items.append(_Item(text, text))  # missing files fail in intake with a clear message
            continue
        saw_folder = True
        try:
            images = _folder_images(path, recursive)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            items.append(
                _Item(
                    text, text, error=UnreadableSourceError(f"'{text}' cannot be read ({reason}).")
                )
            )
            continue
        if not images:
            where = "or its subfolders " if recursive else ""
            hint = "" if recursive else " (use --recursive to look in subfolders)"
            items.append(
                _Item(
                    text,
                    text,
                    error=EmptyFolderError(
                        f"The folder '{text}' {where}contains no image files{hint}."
                    ),
                )
            )
            continue
        items.extend(_Item(str(p), str(p)) for p in images)
    return items, saw_folder


def _chunks(items: Sequence[_Item], size: int) -> Iterator[Sequence[_Item]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _score_chunk(
    detector: Detector, chunk: Sequence[_Item], heatmap: bool = False
) -> list[Result | HumanmadeError]:
    """Scores for a chunk, in order: image files go through one batched call, URLs and
    clips (videos, animated images) one by one."""
    from .video import is_moving_image

    results: dict[int, Result | HumanmadeError] = {}
    candidates = [(i, item) for i, item in enumerate(chunk) if not item.is_url and not item.error]
    clips = [(i, item) for i, item in candidates if is_moving_image(item.source)]
    files = [(i, item) for i, item in candidates if (i, item) not in clips]
    if files:
        try:
            batch = detector.score_many(
                [item.source for _, item in files], return_errors=True, heatmap=heatmap
            )
        except WeightsError:
            raise
        except HumanmadeError:
            # Should not happen with return_errors; fall back to one at a time to name the culprit.
            batch = [_score_one(detector.score, item.source, heatmap) for _, item in files]
        for (i, _), result in zip(files, batch, strict=True):
            results[i] = result
    for i, item in enumerate(chunk):
        if item.error is not None:
            results[i] = item.error
        elif item.is_url:
            results[i] = _score_one(functools.partial(_score_url, detector), item.source, heatmap)
    for i, item in clips:
        try:
            results[i] = detector.score_video(item.source)
        except WeightsError:
            raise
        except HumanmadeError as exc:
            results[i] = exc
    return [results[i] for i in range(len(chunk))]


def _score_url(detector: Detector, url: str, heatmap: bool = False) -> Result:
    """Fetched safely once, then scored as what the bytes are: an image, or a clip."""
    from .fetch import FetchPolicy, fetch_url
    from .video import is_moving_image

    data = fetch_url(url, detector.fetch_policy or FetchPolicy()).data
    if is_moving_image(data):
        return detector.score_video(data)
    return detector.score(data, heatmap=heatmap)


def _score_one(
    fn: Callable[..., Result], source: str, heatmap: bool = False
) -> Result | HumanmadeError:
    try:
        return fn(source, heatmap=heatmap)
    except WeightsError:
        raise
    except HumanmadeError as exc:
        return exc


class _Output:
    """Writes results to stdout and failures to stderr without tearing a progress bar."""

    def __init__(self, as_json: bool, bar: Any, verbose: bool = False) -> None:
        self.as_json = as_json
        self.bar = bar
        self.verbose = verbose

    def _write(self, text: str, stream: TextIO) -> None:
        if self.bar is not None and not self.bar.disable:
            self.bar.write(text, file=stream)
        else:
            print(text, file=stream)
        stream.flush()

    def result(
        self, item: _Item, result: Result | HumanmadeError, heatmap: Path | None = None
    ) -> bool:
        """Report one result (and where its heatmap went); returns whether it succeeded."""
        if isinstance(result, HumanmadeError):
            message = str(result) or type(result).__name__
            if self.as_json:
                record = {"source": item.name, "error": error_code(result), "message": message}
                self._write(json.dumps(record, ensure_ascii=False), sys.stdout)
            self._write(f"{item.name}: error: {message}", sys.stderr)
            return False
        if self.as_json:
            record = {"source": item.name, **result.to_dict()}
            if heatmap is not None:
                record["heatmap_file"] = str(heatmap)
            self._write(json.dumps(record, ensure_ascii=False), sys.stdout)
        else:
            lines = [f"{item.name}: {result.summary()}"]
            found = getattr(result, "evidence", ())  # a clip's verdict carries none yet
            evidence = [e.to_dict() for e in found]
            lines += [f"  note: {r}" for r in reasons_beyond_evidence(result.reasons, evidence)]
            lines += [f"  [{e.strength.label}] {e.summary} ({e.where})" for e in found]
            notes = getattr(result, "notes", ())  # a clip's verdict carries none
            if self.verbose and notes:
                lines.append(f"  note: the image library says: {'; '.join(notes)}")
            if heatmap is not None:
                lines.append(f"  heatmap: {heatmap}")
            self._write("\n".join(lines), sys.stdout)
        return True


def _cmd_score(args: argparse.Namespace, prog: str) -> int:
    from .detector import DEFAULT_MAX_TILES, Detector
    from .fetch import FetchPolicy

    try:
        policy = FetchPolicy(allow_hosts=frozenset(args.allow_host))
    except ValueError as exc:
        return report_error(prog, f"--allow-host: {exc}")
    try:
        detector = Detector(
            args.weights,
            max_tiles=args.max_tiles or DEFAULT_MAX_TILES,
            fetch_policy=policy,
            device=args.device,
            library_notes=True,  # Pillow's warnings become notes, not stderr lines
        )
    except (RuntimeError, ValueError) as exc:  # e.g. an unknown --device
        return report_error(prog, f"--device: {exc}")
    problem = device_problem(detector.device)
    if problem:
        return report_error(prog, f"--device {args.device}: {problem}")

    items, saw_folder = expand_inputs(args.inputs, args.recursive)
    if args.heatmap is not None and _names_a_file(args.heatmap) and len(items) > 1:
        return report_error(
            prog,
            f"--heatmap {args.heatmap} names one file, but {len(items)} images are scored; "
            "give a folder instead",
        )
    try:
        if any(item.error is None for item in items):
            detector.loaded  # noqa: B018 -- load (and verify) the weights once, up front
    except WeightsError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except RuntimeError as exc:  # the device failed in a way device_problem() did not foresee
        return report_error(prog, f"--device {args.device}: {str(exc).splitlines()[0]}")
    try:
        return _run_score(detector, items, saw_folder, args)
    except WeightsError as exc:
        _error(str(exc))
        return EXIT_USAGE


def device_problem(device: str) -> str:
    """Why a device cannot run here, in words; '' when it can.

    Checked before the weights load, because the runtimes' own failures ("Found no NVIDIA
    driver") come as tracebacks from deep inside the first inference. The CLIP expert runs
    on ONNX Runtime; a release with a trace network also runs torch on the same device.
    """
    name, _, index = device.partition(":")
    if name not in ("cpu", "cuda", "auto") or (index and not index.isdigit()):
        return f"unknown device {device!r}; use cpu, cuda (or cuda:N) or auto"
    if name != "cuda":
        return ""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return (
            "no CUDA GPU is usable by ONNX Runtime here (install the gpu extra, "
            "onnxruntime-gpu; or use --device cpu, or auto)"
        )
    return ""


def _run_score(
    detector: Detector, items: list[_Item], saw_folder: bool, args: argparse.Namespace
) -> int:
    from tqdm import tqdm

    show_bar = not args.no_progress and (saw_folder or len(items) >= PROGRESS_MIN_INPUTS)
    # disable=None: tqdm turns itself off when stderr is not a terminal.
    bar = tqdm(
        total=len(items),
        unit="img",
        file=sys.stderr,
        disable=None if show_bar else True,
        leave=False,
        dynamic_ncols=True,
    )
    out = _Output(args.json, bar, args.verbose)
    failures = 0
    # Image-library warnings not tied to one file (the Detector collects those that are):
    # one line with --verbose, never Python's warning lines with source paths.
    leftover: list[str] = []
    try:
        with library_notes(leftover):
            failures = _score_items(detector, items, args, out, bar)
    finally:
        bar.close()
    if leftover and args.verbose:
        print(f"note: the image library says: {'; '.join(leftover)}", file=sys.stderr)
    if failures and len(items) > 1:
        print(f"{failures} of {len(items)} inputs failed.", file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK


def _score_items(
    detector: Detector, items: list[_Item], args: argparse.Namespace, out: _Output, bar: Any
) -> int:
    """Score and report every item; returns how many failed."""
    failures = 0
    for chunk in _chunks(items, BATCH_SIZE):
        results = _score_chunk(detector, chunk, heatmap=args.heatmap is not None)
        for item, result in zip(chunk, results, strict=True):
            heatmap_path = None
            # A clip's verdict has no heatmap (its frames' are not drawn).
            is_image = getattr(result, "heatmap", None) is not None
            if is_image and args.heatmap is not None:
                written = _write_heatmap(detector, item, result, args.heatmap, len(items))
                if isinstance(written, HumanmadeError):
                    result = written
                else:
                    heatmap_path = written
            if not out.result(item, result, heatmap_path):
                failures += 1
        bar.update(len(chunk))
    return failures


# What `--heatmap OUT` may be written as when it names a file (a single image).
HEATMAP_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def _names_a_file(out: Path) -> bool:
    return out.suffix.lower() in HEATMAP_FORMATS and not out.is_dir()


def _heatmap_path(out: Path, item: _Item, n_items: int) -> Path:
    if n_items == 1 and _names_a_file(out):
        return out
    stem = Path(item.name.rstrip("/")).name or "image"
    return out / f"{stem}.heatmap.png"


def _write_heatmap(
    detector: Detector, item: _Item, verdict: Verdict, out: Path, n_items: int
) -> Path | HumanmadeError:
    """Render the heatmap figure; returns where it went. A failure to write is that input's."""
    from .fetch import FetchPolicy, fetch_url
    from .heatmap import render_heatmap_figure
    from .intake import load_image

    try:
        if item.is_url:  # fetched again: verdicts keep no pixels
            source: Any = fetch_url(item.source, detector.fetch_policy or FetchPolicy()).data
        else:
            source = item.source
        image = load_image(source, detector.limits).image
        path = _heatmap_path(out, item, n_items)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure = render_heatmap_figure(image, verdict.heatmap, verdict.summary(), verdict.cutoffs)
        figure.save(path, format=HEATMAP_FORMATS.get(path.suffix.lower(), "PNG"))
    except HumanmadeError as exc:
        return exc
    except OSError as exc:
        return UnreadableSourceError(f"Cannot write the heatmap for {item.name}: {exc}")
    return path


# --------------------------------------------------------------------------- info


# The validation figures in the order people read them, each with a label and a format:
# "pct" for rates, "num" for scores, "int" for counts. Unknown keys follow, worded plainly.
_VAL_FIGURES: dict[str, tuple[str, str]] = {
    "n_images": ("validation images", "int"),
    "auc": ("ROC AUC (1.0 = perfect ranking)", "num"),
    "accuracy_at_0.5": ("accuracy at a 50% threshold", "pct"),
    "tpr_at_1pct_fpr": ("AI images caught at 1% false alarms", "pct"),
    "tpr_at_5pct_fpr": ("AI images caught at 5% false alarms", "pct"),
    "likely_ai_rate_on_human": ("human images called likely AI", "pct"),
    "ece": ("calibration error (ECE)", "num"),
    "ece_as_shipped": ("calibration error (ECE), as shipped", "num"),
    "ece_crossfitted": ("calibration error (ECE), cross-fitted", "num"),
    "ece_crossfitted_by_source": ("calibration error (ECE), cross-fitted by source", "num"),
}


def _figure_lines(report: dict[str, Any]) -> list[str]:
    """'  ROC AUC (1.0 = perfect ranking)   0.862' per figure, labelled for people."""
    keys = [k for k in _VAL_FIGURES if k in report] + sorted(set(report) - set(_VAL_FIGURES))
    rows = []
    for key in keys:
        label, kind = _VAL_FIGURES.get(key, (key.replace("_", " "), ""))
        rows.append((label, _figure(report[key], kind)))
    width = max(len(label) for label, _ in rows)
    return [f"  {label:<{width}}  {value}" for label, value in rows]


def _figure(value: Any, kind: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _fmt(value)
    if kind == "pct":
        return f"{value * 100:.1f}%"
    if kind == "int":
        return f"{int(value):,}"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _model_info(path: Path) -> dict[str, Any]:
    from .weights import MODEL_CARD_NAME, card_sha256, load_weights

    card_sha = card_sha256(path) if path.is_file() else None
    loaded = load_weights(path)  # verifies against the card; raises WeightsError if damaged
    meta = loaded.metadata
    card = path.parent / MODEL_CARD_NAME
    val_report: dict[str, Any] | None = None
    val_error: str | None = None
    if "val_report" in meta:
        try:
            parsed = json.loads(meta["val_report"])
            if isinstance(parsed, dict):
                val_report = parsed
            else:
                val_error = "val_report is not a JSON object"
        except ValueError:
            val_error = "val_report is not valid JSON"
    return {
        "weights": str(path),
        "version": loaded.version,
        "sha256": loaded.sha256,
        "sha256_matches_card": None if card_sha is None else card_sha == loaded.sha256,
        "model_card": str(card) if card.is_file() else None,
        "tile_size": loaded.tile_size,
        "clip_blocks": list(loaded.clip.blocks) if loaded.clip else None,
        "calibration": {
            "temperature": loaded.calibration.temperature,
            "bias": loaded.calibration.bias,
        },
        "parameters": (
            sum(p.numel() for p in loaded.model.parameters()) if loaded.model else None
        ),
        "architecture": loaded.model.config.backbone if loaded.model else None,
        "experts": [
            {
                "name": e.name,
                "weight": e.weight,
                "temperature": e.calibration.temperature,
                "bias": e.calibration.bias,
            }
            for e in loaded.fusion.experts
        ]
        if loaded.fusion.names != ("trace",)
        else [],
        "clip_max_crops": loaded.clip.max_crops if loaded.clip else None,
        "cutoffs": {"human": loaded.cutoffs.human, "ai": loaded.cutoffs.ai},
        "clip_rule": _clip_rule_text(loaded.path, loaded.sha256),
        "calibrated_on": meta.get("calibrated_on"),
        "parent_version": meta.get("parent_version"),
        "parent_sha256": meta.get("parent_sha256"),
        "released_at": meta.get("released_at"),
        "train_counts": _json_or_none(meta.get("train_counts")),
        "train_minutes": meta.get("train_minutes"),
        "val_report": val_report,
        **({"val_report_error": val_error} if val_error else {}),
    }


def _clip_rule_text(path: Path, sha256: str) -> str:
    from .clip_rule import load_rule

    try:
        return load_rule(path, sha256).describe()
    except WeightsError as exc:  # info still tells the rest
        return f"unreadable ({exc})"


def _json_or_none(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _cmd_info(args: argparse.Namespace) -> int:
    from .weights import MODEL_CARD_NAME, default_weights_path

    path = args.weights or default_weights_path()
    try:
        info = _model_info(path)
    except WeightsError as exc:
        _error(str(exc))
        return EXIT_USAGE
    if args.json:
        print(json.dumps(info, ensure_ascii=False))
        return EXIT_OK

    matched = info["sha256_matches_card"]
    check = {
        True: "matches the model card",
        False: "DOES NOT match the model card",  # load_weights refuses this; kept for safety
        None: f"no entry in a model card ({MODEL_CARD_NAME}); unverified",
    }[matched]
    cal = info["calibration"]
    lines = [
        f"weights:      {info['weights']}",
        f"version:      {info['version']}",
        f"sha256:       {info['sha256']} ({check})",
        f"model card:   {info['model_card'] or 'none found beside the weights'}",
    ]
    trace = f"{info['architecture']}, {info['parameters'] or 0:,} parameters"
    if info["experts"]:
        weights = {e["name"]: e["weight"] for e in info["experts"]}
        lines.append(
            "experts:      "
            + ", ".join(f"{name} (fusion weight {w:.3f})" for name, w in weights.items())
        )
        # Every expert, not only the trace network's EfficientNet.
        if "trace" in weights:
            lines.append(f"  trace:      local-trace network, {trace}")
        if "clip" in weights:
            blocks = info["clip_blocks"] or []
            read = "every block" if len(blocks) == 12 else "block " + ", ".join(map(str, blocks))
            lines.append(
                "  clip:       CLIP ViT-B/16 image tower (int8 ONNX) and a linear head on the "
                f"tokens of {read}, on at most {info['clip_max_crops']} native 224 px crops"
            )
    else:
        lines.append(f"architecture: {trace}")
    if info["tile_size"]:
        lines.append(f"tile size:    {info['tile_size']} px")
    lines += [
        f"calibration:  temperature {cal['temperature']:.4f}, bias {cal['bias']:+.4f}"
        + (f" (fitted on {info['calibrated_on']})" if info["calibrated_on"] else ""),
    ]
    cut = BandCutoffs(info["cutoffs"]["human"], info["cutoffs"]["ai"])
    lines.append(
        f"bands:        likely human below {cutoff_percent(cut.human, cut)}%, likely AI from "
        f"{cutoff_percent(cut.ai, cut)}% (the cut-offs stored with these weights)"
    )
    lines.append(f"clips:        {info['clip_rule']}")
    if info["parent_version"]:
        lines.append(
            f"derived from: {info['parent_version']} ({(info['parent_sha256'] or '?')[:12]}…)"
        )
    if info["released_at"]:
        lines.append(f"released:     {info['released_at']}")
    if info["train_minutes"]:
        lines.append(f"training:     {info['train_minutes']} min")
    origins = (info["train_counts"] or {}).get("by_label_origin")
    if isinstance(origins, dict):
        lines.append("trained on:   " + ", ".join(f"{n} {k}" for k, n in origins.items()))
    report = info["val_report"]
    if report:
        lines.append("validation:")
        lines.extend(_figure_lines(report))
    elif "val_report_error" in info:
        lines.append(f"validation:   unreadable ({info['val_report_error']})")
    else:
        lines.append("validation:   no validation figures recorded")
    print("\n".join(lines))
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
