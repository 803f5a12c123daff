"""C2PA manifests (Content Credentials), read and validated with c2pa-python.

The active manifest gives the claim generator, the actions and their IPTC
`digitalSourceType`; the validation status says whether the manifest can be believed.
Three outcomes are kept apart, because they mean different things to a reviewer:

- intact: every hash and the claim signature check out. The signer may still be unknown
  (no trust list is loaded unless `HUMANMADE_C2PA_TRUST_ANCHORS` names a PEM bundle) or its
  certificate may have expired; that is said, but the manifest still describes these pixels.
- tampered: a hash or the signature does not match (edited after signing, forged). Reported
  as `invalid` and never trusted.
- unreadable: the store is there but cannot be validated (unknown algorithm, broken JUMBF).
  Reported as `invalid`.

Nothing is ever fetched: remote manifests and OCSP look-ups are switched off, and a manifest
that lives only at a URL named in XMP (`dcterms:provenance`) is reported, not downloaded.
c2pa-python is imported lazily; without it this reader reports nothing (logged at debug).
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from .containers import Metadata
from .evidence import Evidence, Strength, clip_text
from .xmp import (
    AI_SOURCE_TYPES,
    WEAK_AI_SOURCE_TYPES,
    describe_source_type,
    remote_manifest_urls,
    source_type_code,
)

log = logging.getLogger(__name__)

__all__ = ["TRUST_ANCHORS_ENV", "classify_validation", "read_c2pa", "read_c2pa_stream"]

TRUST_ANCHORS_ENV = "HUMANMADE_C2PA_TRUST_ANCHORS"

_MIME = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "TIFF": "image/tiff",
    "HEIF": "image/heif",
    "GIF": "image/gif",
}

# Validation failure codes that only concern the signer's credentials or time, not whether
# the manifest and the pixels are what was signed.
_CREDENTIAL_CODES = {
    "signingCredential.untrusted": "untrusted",
    "signingCredential.expired": "expired",
    "claimSignature.outsideValidity": "expired",
    "timeStamp.untrusted": "untrusted",
    "timeStamp.outsideValidity": "expired",
    "signingCredential.ocsp.skipped": "untrusted",
    "signingCredential.ocsp.inaccessible": "untrusted",
    "signingCredential.ocsp.unknown": "untrusted",
}
# Credentials that must not be trusted at all (the key may be compromised).
_BAD_CREDENTIAL_CODES = {
    "signingCredential.revoked",
    "signingCredential.invalid",
    "signingCredential.ocsp.revoked",
}

# What each validation category means for people.
VALIDATION_WORDS = {
    "trusted": "the manifest is intact and its signer is on the loaded trust list",
    "intact_untrusted": "the manifest is intact, but its signer is not on a trust list",
    "intact_expired": "the manifest is intact, but its signing certificate has expired "
    "(or was used outside its validity)",
    "bad_credential": "its signing certificate is revoked or invalid, so it is not trusted",
    "tampered": "it failed validation (tampered with or damaged), so it is not trusted",
    "unreadable": "it could not be validated, so it is not trusted",
}


def classify_validation(state: str | None, failure_codes: Sequence[str]) -> str:
    """One of VALIDATION_WORDS' keys from c2pa's validation state and failure codes.

    c2pa calls an intact manifest with an expired certificate "Invalid": the failure codes,
    not the state, tell "tampered" from "intact but not trustworthy".
    """
    codes = [str(c) for c in failure_codes]
    integrity = [
        c
        for c in codes
        if c not in _CREDENTIAL_CODES
        and c not in _BAD_CREDENTIAL_CODES
        and not c.startswith("cawg.")
    ]
    if integrity:
        return "tampered"
    if any(c in _BAD_CREDENTIAL_CODES for c in codes):
        return "bad_credential"
    if any(_CREDENTIAL_CODES.get(c) == "expired" for c in codes):
        return "intact_expired"
    if (state or "").lower() == "trusted":
        return "trusted"
    if (state or "").lower() in ("valid", "trusted", "invalid"):
        return "intact_untrusted"
    return "unreadable"


# --------------------------------------------------------------------------- c2pa-python

_context_lock = threading.Lock()
_context: Any = None
_context_pid: int | None = None


def _c2pa_context(c2pa: Any) -> Any:
    """One Context per process: no network (remote manifests, OCSP), optional trust anchors."""
    global _context, _context_pid
    with _context_lock:
        if _context is None or _context_pid != os.getpid():  # a forked worker builds its own
            settings: dict[str, Any] = {
                "verify": {
                    "remote_manifest_fetch": False,
                    "ocsp_fetch": False,
                    "verify_trust": True,
                },
            }
            anchors_path = os.environ.get(TRUST_ANCHORS_ENV)
            if anchors_path:
                try:
                    with open(anchors_path, encoding="utf-8") as fh:
                        settings["trust"] = {"trust_anchors": fh.read()}
                except OSError:
                    log.warning("cannot read C2PA trust anchors from %s", anchors_path)
            _context = c2pa.Context.from_dict(settings)
            _context_pid = os.getpid()
        return _context


def reset_context() -> None:
    """Forget the shared c2pa Context (after changing `HUMANMADE_C2PA_TRUST_ANCHORS`)."""
    global _context
    with _context_lock:
        _context = None


def _read_store(c2pa: Any, data: Any, mime: str | None) -> dict[str, Any] | None:
    stream = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    reader = c2pa.Reader.try_create(mime, stream, None, _c2pa_context(c2pa))
    if reader is None:
        return None
    try:
        store = json.loads(reader.json())
    finally:
        reader.close()
    return store if isinstance(store, dict) else None


def read_c2pa(data: bytes, meta: Metadata) -> list[Evidence]:
    remote = remote_manifest_urls(meta)
    if not meta.has_jumbf:
        return [_remote_evidence(url, where) for url, where in remote[:1]]
    try:
        import c2pa
    except ImportError:
        log.debug("c2pa-python is not installed; C2PA manifests are not read")
        return [_remote_evidence(url, where) for url, where in remote[:1]]
    try:
        store = _read_store(c2pa, data, _MIME.get(meta.format))
    except c2pa.C2paError as exc:
        message = str(exc)
        if "remote" in type(exc).__name__.lower() or message.lower().startswith("remote"):
            url = remote[0] if remote else (_url_in(message), "C2PA reference")
            return [_remote_evidence(*url)]
        if "ManifestNotFound" in type(exc).__name__ or "no jumbf" in message.lower():
            return []
        return [_unreadable_evidence(message)]
    if store is None:
        return [_remote_evidence(url, where) for url, where in remote[:1]]
    return [_manifest_evidence(store)]


def read_c2pa_stream(stream: Any, mime: str) -> list[Evidence]:
    """The C2PA manifest of a file given as a binary stream of type `mime` (a video: the
    image path sniffs its own container first); [] when there is none."""
    try:
        import c2pa
    except ImportError:
        log.debug("c2pa-python is not installed; C2PA manifests are not read")
        return []
    try:
        store = _read_store(c2pa, stream, mime)
    except c2pa.C2paError as exc:
        message = str(exc)
        if "remote" in type(exc).__name__.lower() or message.lower().startswith("remote"):
            return [_remote_evidence(_url_in(message), "C2PA reference")]
        if "ManifestNotFound" in type(exc).__name__ or "no jumbf" in message.lower():
            return []
        return [_unreadable_evidence(message)]
    return [] if store is None else [_manifest_evidence(store)]


def _url_in(message: str) -> str:
    for word in message.split():
        if word.startswith(("http://", "https://")):
            return clip_text(word, 300)
    return ""


def _remote_evidence(url: str, where: str) -> Evidence:
    return Evidence(
        kind="c2pa_remote_manifest",
        summary=(
            f"The file points to a C2PA manifest stored elsewhere ({url or 'no URL given'}); "
            "it was not fetched, so its claims are unknown."
        ),
        where=where,
        strength=Strength.CONTEXT,
        details={"url": url, "fetched": False},
    )


def _unreadable_evidence(message: str) -> Evidence:
    reason = clip_text(message, 200)
    return Evidence(
        kind="c2pa",
        summary=(
            "The file carries a C2PA manifest that could not be validated "
            f"({reason}); it is not trusted."
        ),
        where="C2PA manifest store",
        strength=Strength.INVALID,
        details={"validation": "unreadable", "error": reason},
    )


def _claim_generator(manifest: Mapping[str, Any]) -> str:
    info = manifest.get("claim_generator_info")
    if isinstance(info, list) and info and isinstance(info[0], Mapping):
        first = info[0]
        name = str(first.get("name", "")).strip()
        version = str(first.get("version", "")).strip()
        if name:
            return clip_text(f"{name} {version}".strip(), 120)
    return clip_text(str(manifest.get("claim_generator") or "unknown"), 120)


def _actions(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    assertions = manifest.get("assertions")
    if not isinstance(assertions, list):
        return out
    for assertion in assertions[:64]:
        if not isinstance(assertion, Mapping):
            continue
        if not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        data = assertion.get("data")
        actions = data.get("actions") if isinstance(data, Mapping) else None
        for action in actions[:64] if isinstance(actions, list) else []:
            if not isinstance(action, Mapping):
                continue
            item: dict[str, Any] = {"action": clip_text(str(action.get("action", "")), 60)}
            agent = action.get("softwareAgent")
            if isinstance(agent, Mapping):
                agent = agent.get("name")
            if isinstance(agent, str) and agent.strip():
                item["software_agent"] = clip_text(agent.strip(), 120)
            dst = action.get("digitalSourceType")
            code = source_type_code(dst) if isinstance(dst, str) else None
            if code:
                item["digital_source_type"] = code
            out.append(item)
    return out


def _ingredient_source_types(store: Mapping[str, Any], active: str) -> list[str]:
    codes: set[str] = set()
    manifests = store.get("manifests")
    if not isinstance(manifests, Mapping):
        return []
    for label, manifest in list(manifests.items())[:32]:
        if label == active or not isinstance(manifest, Mapping):
            continue
        codes.update(
            a["digital_source_type"] for a in _actions(manifest) if "digital_source_type" in a
        )
    return sorted(codes)


def _failure_codes(store: Mapping[str, Any]) -> list[str]:
    codes: list[str] = []
    status = store.get("validation_status")
    if isinstance(status, list):
        codes += [str(s.get("code")) for s in status if isinstance(s, Mapping) and s.get("code")]
    results = store.get("validation_results")
    active = results.get("activeManifest") if isinstance(results, Mapping) else None
    failures = active.get("failure") if isinstance(active, Mapping) else None
    if isinstance(failures, list):
        codes += [str(s.get("code")) for s in failures if isinstance(s, Mapping) and s.get("code")]
    return list(dict.fromkeys(codes))[:32]


def _manifest_evidence(store: Mapping[str, Any]) -> Evidence:
    active = str(store.get("active_manifest", ""))
    manifests = store.get("manifests")
    manifest = manifests.get(active) if isinstance(manifests, Mapping) else None
    if not isinstance(manifest, Mapping):
        return _unreadable_evidence("no active manifest")
    codes = _failure_codes(store)
    state = store.get("validation_state")
    category = classify_validation(state if isinstance(state, str) else None, codes)
    generator = _claim_generator(manifest)
    actions = _actions(manifest)
    dsts = list(
        dict.fromkeys(a["digital_source_type"] for a in actions if "digital_source_type" in a)
    )
    ai = [c for c in dsts if c in AI_SOURCE_TYPES]
    weak = [c for c in dsts if c in WEAK_AI_SOURCE_TYPES]
    intact = category in ("trusted", "intact_untrusted", "intact_expired")
    agents = list(dict.fromkeys(a["software_agent"] for a in actions if "software_agent" in a))

    tools = f" (tools: {', '.join(agents[:3])})" if agents else ""
    if not intact:
        strength = Strength.INVALID
        claim = f"A C2PA manifest naming {generator}{tools} as its maker"
        if ai:
            claim += f" and declaring AI generation ({', '.join(ai)})"
        integrity = [c for c in codes if c not in _CREDENTIAL_CODES][:3]
        failed = f": {', '.join(integrity)}" if integrity else ""
        summary = f"{claim} is present, but {VALIDATION_WORDS[category]}{failed}."
    else:
        if ai:
            strength = Strength.STRONG_AI
            claim = f"declares the image {describe_source_type(ai[0])} ({', '.join(ai)})"
        elif weak:
            strength = Strength.WEAK_AI
            claim = f"declares the image {describe_source_type(weak[0])} ({', '.join(weak)})"
        else:
            strength = Strength.CONTEXT
            claim = "records the image's history"
            if dsts:
                claim += f" and declares it {describe_source_type(dsts[0])} ({dsts[0]})"
            claim += " (context only: a manifest cannot prove human authorship)"
        summary = f"C2PA manifest from {generator}{tools} {claim}; {VALIDATION_WORDS[category]}."
    signature = manifest.get("signature_info")
    signature = signature if isinstance(signature, Mapping) else {}
    details = {
        "claim_generator": generator,
        "actions": actions[:16],
        "digital_source_types": dsts,
        "ingredient_digital_source_types": _ingredient_source_types(store, active),
        "validation": category,
        "validation_state": state if isinstance(state, str) else None,
        "validation_failures": codes,
        "signer": {
            k: clip_text(str(signature[k]), 120)
            for k in ("issuer", "common_name", "alg", "time")
            if signature.get(k)
        },
    }
    return Evidence(
        kind="c2pa",
        summary=summary,
        where="C2PA active manifest",
        strength=strength,
        details=details,
    )
