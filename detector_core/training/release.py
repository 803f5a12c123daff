"""Gate a candidate model and, if it passes, write it as a versioned release with its model card.

    humanmade release --candidate new.safetensors --version 0.2.0 --out-dir weights \\
        --add exports/2025-06 --notes "fine-tuned on June's reviews"

Writes OUT_DIR/humanmade-VERSION.safetensors (the candidate's tensors; metadata gains the
version, the release date and the parent model), the gate plot OUT_DIR/gate-VERSION.png, and a
section in OUT_DIR/README.md (created if absent; existing text is never changed) whose sha256
line `weights.load_weights` checks. A refused candidate writes nothing, and neither does a
release that fails part-way (what it wrote is removed, so the same version can be tried
again). A release file or gate plot is never overwritten. Exit codes: 0 released, 1 refused
(or failed its final check), 2 usage or data error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from safetensors.numpy import save_file

from ..argtypes import report_error
from ..errors import WeightsError
from ..weights import (
    MODEL_CARD_NAME,
    WEIGHTS_ENV,
    card_sha256,
    file_sha256,
    load_weights,
    make_readable,
    output_problem,
    read_safetensors,
)
from .gate import (
    EXIT_REFUSED,
    EXIT_USAGE,
    GateError,
    GateResult,
    add_eval_arguments,
    gate_from_args,
    markdown_table,
    print_result,
    write_gate_plot,
)

PROG = "humanmade release"

EXIT_RELEASED = 0
# A file-name fragment: no path separators, no leading dot (hidden files, "..").
VERSION_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+-]{0,63}")
CARD_TITLE = "# humanmade model card\n"


class ReleaseError(ValueError):
    """The release cannot be written as asked (bad version, existing file, changed candidate)."""


def release_name(version: str) -> str:
    return f"humanmade-{version}.safetensors"


def check_version(version: str) -> str:
    if not VERSION_RE.fullmatch(version):
        raise ReleaseError(
            f"version {version!r} is not usable in a file name: use 1-64 letters, digits and "
            "'.', '_', '+', '-', starting with a letter or digit (e.g. 0.2.0)"
        )
    return version


def plot_name(version: str) -> str:
    return f"gate-{version}.png"


def check_target(out_dir: Path, version: str) -> Path:
    """The release path, refusing a version that already exists as a file or in the card."""
    target = out_dir / release_name(version)
    problem = output_problem(target)  # before the gate's minutes of scoring
    if problem:
        raise ReleaseError(problem)
    # The plot too: a failed release removes what it wrote, so it must only ever remove
    # files it created itself.
    for path in (target, out_dir / plot_name(version)):
        if path.exists():
            raise ReleaseError(f"{path} already exists; a release is never overwritten")
    try:
        recorded = card_sha256(target)
    except WeightsError as exc:
        raise ReleaseError(str(exc)) from exc
    if recorded is not None:
        # A second sha line for the same name would never be read: the first one wins.
        raise ReleaseError(
            f"{out_dir / MODEL_CARD_NAME} already records {target.name}; choose another version"
        )
    return target


# --------------------------------------------------------------------------- weights


def write_release_weights(
    candidate: Path, target: Path, version: str, parent_version: str, parent_sha256: str
) -> tuple[str, dict[str, str]]:
    """Copy the candidate's tensors to `target` with release metadata; returns (sha256, metadata).

    The file is written beside the target and linked into place, so an existing release is
    never replaced, even by a concurrent run.
    """
    metadata, state = read_safetensors(candidate)
    metadata |= {
        "version": version,
        "released_at": datetime.now(UTC).date().isoformat(),
        "parent_version": parent_version,
        "parent_sha256": parent_sha256,
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        save_file(state, str(partial), metadata=metadata)
        make_readable(partial)  # the web workers that load it may run as another user
        try:
            os.link(partial, target)
        except FileExistsError:
            raise ReleaseError(f"{target} already exists; a release is never overwritten") from None
    finally:
        partial.unlink(missing_ok=True)
    return file_sha256(target), metadata


# --------------------------------------------------------------------------- model card


def _counts_table(title: str, counts: Any) -> list[str]:
    if not isinstance(counts, dict) or not counts:
        return []
    lines = [f"| {title} | images |", "|---|---|"]
    for key, n in sorted(counts.items(), key=lambda kv: str(kv[0])):
        lines.append(f"| {key} | {n} |")
    return [*lines, ""]


def training_data_lines(metadata: dict[str, str]) -> list[str]:
    """The candidate's `train_counts`, rendered as far as its shape allows."""
    text = metadata.get("train_counts")
    if not text:
        return ["Not recorded in the weights' metadata (`train_counts` is absent).", ""]
    try:
        counts = json.loads(text)
    except ValueError:
        return [f"`train_counts` is not valid JSON: `{text[:200]}`", ""]
    if not isinstance(counts, dict):
        return [f"`train_counts`: `{json.dumps(counts)[:200]}`", ""]
    lines: list[str] = []
    lines += _counts_table("label/source", counts.get("by_source"))
    lines += _counts_table("label origin", counts.get("by_label_origin"))
    rest = {k: v for k, v in counts.items() if k not in ("by_source", "by_label_origin")}
    if rest:
        lines += [f"Other counts: `{json.dumps(rest, sort_keys=True)}`", ""]
    return lines or ["`train_counts` is empty.", ""]


def card_section(
    version: str,
    sha256: str,
    metadata: dict[str, str],
    result: GateResult,
    plot_name: str,
    notes: str | None,
) -> str:
    cand, cur, m = result.candidate, result.current, result.margins
    lines = [
        f"## Release {version}",
        "",
        f"- sha256 of `{release_name(version)}`: `{sha256}`",
        f"- version: `{version}`",
        f"- released: {metadata['released_at']} (UTC)",
        f"- parent: `{cur.version}` (sha256 `{cur.sha256}`)",
        "",
        f"### Release gate: `{cur.version}` (current) vs `{version}` (this release)",
        "",
        "Same held-out images for both, each model with its own calibration and cut-offs. "
        "Export sets hold only reviewer-labelled held-out images. FPR and TPR are the shares of "
        "human and AI images in `likely_ai`.",
        "",
        markdown_table(result),
        "",
        f"Accepted: no set lost more than {m.max_auc_drop:g} AUC or gained more than "
        f"{m.max_fpr_rise:g} human FPR at `likely_ai`.",
        "",
        *(f"- note: {w}" for w in result.warnings),
        *([""] if result.warnings else []),
        f"![Release gate {version}]({plot_name})",
        "",
        "### Training data",
        "",
        *training_data_lines(metadata),
        "### Calibration",
        "",
        f"- p = sigmoid(logit / {cand.temperature:.4g} {'−' if cand.bias < 0 else '+'} "
        f"{abs(cand.bias):.4g}) (temperature {cand.temperature:.6g}, bias {cand.bias:.6g})",
        f"- bands: `likely_human` < {cand.cutoffs.human:g} ≤ `uncertain` < {cand.cutoffs.ai:g} "
        "≤ `likely_ai`",
        f"- calibrated on: {metadata.get('calibrated_on') or 'not recorded'}",
        "",
        "### Notes",
        "",
        (notes or "").strip() or "None.",
        "",
    ]
    return "\n".join(lines)


def append_to_card(card: Path, section: str) -> None:
    """Append the section; the existing card text stays byte for byte as it was."""
    if not card.is_file():
        card.write_text(f"{CARD_TITLE}\n{section}", encoding="utf-8")
        return
    existing = card.read_bytes()
    # One blank line before the new heading, whatever the old text ended with.
    if not existing or existing.endswith(b"\n\n"):
        separator = ""
    elif existing.endswith(b"\n"):
        separator = "\n"
    else:
        separator = "\n\n"
    with card.open("a", encoding="utf-8") as fh:
        fh.write(separator + section)


# --------------------------------------------------------------------------- command line


def write_release(
    args: argparse.Namespace, version: str, target: Path, result: GateResult
) -> tuple[str, Path]:
    """Weights, plot and card section; returns (sha256, plot path).

    The card is written last: its sha256 line is what makes the weights a release. Until
    then a failure (or Ctrl-C) removes the weights and plot written so far; left behind,
    they would block a retry of the version ("already exists") and load unverified.
    """
    written: list[Path] = []
    try:
        sha, metadata = write_release_weights(
            args.candidate, target, version, result.current.version, result.current.sha256
        )
        written.append(target)
        plot = args.out_dir / plot_name(version)
        written.append(plot)
        write_gate_plot(result, plot)
        section = card_section(version, sha, metadata, result, plot.name, args.notes)
        append_to_card(args.out_dir / MODEL_CARD_NAME, section)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return sha, plot


def _deploy_hint(path: Path) -> str:
    return (
        "To deploy: set HUMANMADE['WEIGHTS'] = "
        f"'{path}' in the Django settings (or {WEIGHTS_ENV}={path} in the environment), "
        "restart the workers, then run `python manage.py humanmade_rescore`."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--candidate", type=Path, required=True, help="the .safetensors to release")
    parser.add_argument("--version", required=True, help="the release version, e.g. 0.2.0")
    parser.add_argument(
        "--out-dir", type=Path, required=True, help="folder for the release and its model card"
    )
    add_eval_arguments(parser)
    parser.add_argument("--notes", default=None, help="text for the card's Notes section")
    args = parser.parse_args(argv)
    try:
        version = check_version(args.version)
        target = check_target(args.out_dir, version)
        result = gate_from_args(args)
    except (ReleaseError, GateError, WeightsError) as exc:
        report_error(PROG, str(exc))
        return EXIT_USAGE
    print_result(result)
    if not result.accepted:
        print("Nothing was written.")
        return EXIT_REFUSED
    try:
        if file_sha256(args.candidate) != result.candidate.sha256:
            raise ReleaseError(f"{args.candidate} changed while it was being gated; run again")
        sha, plot = write_release(args, version, target, result)
    except (ReleaseError, WeightsError) as exc:
        report_error(PROG, str(exc))
        return EXIT_USAGE
    except OSError as exc:
        report_error(
            PROG, f"cannot write the release into {args.out_dir} (nothing was kept): {exc}"
        )
        return EXIT_USAGE
    try:
        loaded = load_weights(target)
        if loaded.sha256 != sha or loaded.version != version:
            raise WeightsError(f"it reports version {loaded.version!r}, sha256 {loaded.sha256}")
    except WeightsError as exc:
        report_error(PROG, f"{target} was written but does not verify: {exc}")
        return EXIT_REFUSED
    print(f"Released {version}: {target}")
    print(f"sha256 {sha}")
    print(f"model card {args.out_dir / MODEL_CARD_NAME}, gate plot {plot}")
    print(_deploy_hint(target.resolve()))
    return EXIT_RELEASED


if __name__ == "__main__":
    raise SystemExit(main())
