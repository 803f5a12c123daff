"""How long it takes to find the decision that applies to an image, at 10k, 100k and 1M
detections on PostgreSQL (cms_plugin.matching: the same bytes, or a perceptual hash within
3 bits, found by exact matches on four indexed 16-bit parts, never by scanning every row).

    OMP_NUM_THREADS=1 python benchmarks/decision_lookup.py \\
        [--database-url postgres://postgres@127.0.0.1:5432/postgres] [--sizes 10000 100000 1000000]

It creates a throw-away database (dropped at the end unless --keep), migrates it, fills it
with generate_series in SQL (a 1M-row run takes minutes on two cores) with random hashes, a
third of them decided by a reviewer, then times `decisions_for` on one image (the report
page) and on a page of 50 (a desk batch, an API list page). Half of the probes are planted
near-duplicates of a decided row (1-3 bits flipped): the share found must be 100 %. It
prints a table and asserts nothing; the figures in cms_plugin/README.md come from it.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DECIDED_SHARE = 0.33
PROBES = 200


def _admin_connection(url: str):
    import psycopg

    return psycopg.connect(url, autocommit=True)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _setup_django(url: str) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ["HUMANMADE_DEMO_DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _fill(cursor, start: int, stop: int) -> None:
    """Rows start+1..stop of Detection, in one INSERT ... SELECT FROM generate_series."""
    cursor.execute(
        """
        SELECT column_name, data_type FROM information_schema.columns
        WHERE table_name = 'cms_plugin_detection' AND is_nullable = 'NO'
          AND column_default IS NULL AND column_name <> 'id'
        """
    )
    filler = {"integer": "0", "bigint": "0", "jsonb": "'{}'::jsonb", "boolean": "false"}
    values = {}
    for column, kind in cursor.fetchall():
        if kind.startswith("timestamp"):
            values[column] = "now()"
        else:
            values[column] = filler.get(kind, "''")
    # The hash: two random 32-bit halves as one signed bigint; its parts as the app stores
    # them (each 16 bits minus 32768).
    values.update(
        {
            "sha256": "md5(g::text) || md5((g + 7)::text)",
            "status": f"CASE WHEN random() < {DECIDED_SHARE} THEN 'reviewed' ELSE 'scored' END",
            "evidence": "'{}'::jsonb",
        }
    )
    columns = ", ".join(values)
    cursor.execute(
        f"""
        WITH rows AS (
            SELECT g, (floor(random() * 4294967296)::bigint - 2147483648) * 4294967296
                      + floor(random() * 4294967296)::bigint AS h
            FROM generate_series(%s, %s) AS g
        )
        INSERT INTO cms_plugin_detection ({columns}, phash, phash_0, phash_1, phash_2,
                                          phash_3, submitted_by_id)
        SELECT {", ".join(values.values())}, h,
               ((h >> 48) & 65535) - 32768, ((h >> 32) & 65535) - 32768,
               ((h >> 16) & 65535) - 32768, (h & 65535) - 32768, NULL
        FROM rows
        """,
        [start + 1, stop],
    )
    cursor.execute(
        "UPDATE cms_plugin_detection SET decision = CASE WHEN id %% 2 = 0 THEN 'human_made' "
        "ELSE 'ai_generated' END, reviewed_at = now() "
        "WHERE status = 'reviewed' AND decision = '' AND id > %s",
        [start],
    )
    cursor.execute("ANALYZE cms_plugin_detection")


def _probes(owner, rng: random.Random) -> tuple[list, int]:
    """PROBES unsaved Detections: half near-duplicates of decided rows, half random."""
    from cms_plugin.matching import fields_for_hash, stored_hash
    from cms_plugin.models import Detection
    from detector_core.near_duplicate import from_signed

    decided = list(
        Detection.objects.filter(status="reviewed")
        .order_by("?")
        .values_list("phash", flat=True)[: PROBES // 2]
    )
    probes = []
    for i in range(PROBES):
        if i < len(decided):
            value = from_signed(decided[i])
            for bit in rng.sample(range(64), rng.randint(1, 3)):
                value ^= 1 << bit
        else:
            value = rng.getrandbits(64)
        probe = Detection(
            pk=-(i + 1), status="scored", sha256=f"{rng.getrandbits(256):064x}", submitted_by=owner
        )
        for name, field_value in fields_for_hash(value).items():
            setattr(probe, name, field_value)
        assert stored_hash(probe) == value
        probes.append(probe)
    return probes, len(decided)


def _time(probes: list, group: int) -> tuple[list[float], int]:
    from cms_plugin.matching import decisions_for

    timings, found = [], 0
    for start in range(0, len(probes), group):
        chunk = probes[start : start + group]
        began = time.perf_counter()
        result = decisions_for(chunk)
        timings.append((time.perf_counter() - began) * 1000)
        found += sum(1 for p in chunk[: len(chunk)] if p.pk in result)
    return timings, found


def _plan(probes: list) -> str:
    """EXPLAIN ANALYZE of the query decisions_for runs for these images."""
    from cms_plugin.matching import candidates_query

    return candidates_query(probes).explain(analyze=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default="postgres://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server where a throw-away database may be created",
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)

    name = f"humanmade_lookup_bench_{os.getpid()}"
    admin = _admin_connection(args.database_url)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        _setup_django(_with_database(args.database_url, name))
        from django.contrib.auth import get_user_model
        from django.db import connection

        owner = get_user_model().objects.create_superuser("bench", password=None)
        rng = random.Random(20)
        print(
            f"{'rows':>9}  {'fill s':>7}  {'1 image: median ms':>19}  {'p95 ms':>7}  "
            f"{'50 images: median ms':>21}  {'planted found':>13}  {'random matched':>14}"
        )
        have = 0
        for size in sorted(args.sizes):
            began = time.perf_counter()
            with connection.cursor() as cursor:
                _fill(cursor, have, size)
            fill = time.perf_counter() - began
            have = size
            probes, planted = _probes(owner, rng)
            _time(probes[:10], 1)  # warm the caches
            single, found_single = _time(probes, 1)
            paged, _ = _time(probes, 50)
            planted_found = sum(1 for p in probes[:planted] if p.pk in _matched(probes[:planted]))
            random_matched = found_single - planted_found
            print(
                f"{size:>9,}  {fill:>7.1f}  {statistics.median(single):>19.2f}  "
                f"{_p95(single):>7.2f}  {statistics.median(paged):>21.2f}  "
                f"{planted_found / max(planted, 1):>12.0%}  "
                f"{random_matched:>6} of {PROBES - planted}"
            )
        print("plan of one image's lookup at the largest size:")
        print(_plan(probes[:1]))
        print("plan of a page of 50 images at the largest size:")
        print(_plan(probes[:50]))
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()
    return 0


def _matched(probes: list) -> dict:
    from cms_plugin.matching import decisions_for

    return decisions_for(probes)


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


if __name__ == "__main__":
    raise SystemExit(main())
