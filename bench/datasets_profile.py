"""Dataset profiling throughput and peak memory on generated CSV files.

    .venv/bin/python bench/datasets_profile.py                  # ~200 MB, then 1 GB (about 1 min in all)
    .venv/bin/python bench/datasets_profile.py --sizes 50       # a quick check

For each size it writes a CSV with integer, float (normal and log-normal, 5 % empty), high-cardinality
text and categorical columns into a temp directory, then profiles it in a fresh subprocess with the
code path of the `datasets.profile` job (`datasets.profiles.profile_options()` and
`datasets.profiler.profile_file`; the job adds only the database lookups around them), and prints the
throughput (file MB / wall seconds) and the subprocess's peak RSS (`ru_maxrss`). The temp files are
removed at the end. See docs/performance.md, "Dataset profiling".
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def generate(path: Path, megabytes: float) -> int:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    target = int(megabytes * 1e6)
    rng = np.random.default_rng(1)
    colours = np.array(["red", "green", "blue", "yellow", "purple", "orange", "black", "white"])
    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("age", pa.int64()),
            ("score", pa.float64()),
            ("income", pa.float64()),
            ("user", pa.string()),
            ("colour", pa.string()),
            ("city", pa.string()),
        ]
    )
    start = 0
    with pa_csv.CSVWriter(path, schema) as writer:
        while path.stat().st_size < target:
            n = 200_000
            writer.write_table(
                pa.table(
                    {
                        "id": np.arange(start, start + n),
                        "age": rng.integers(18, 90, n),
                        "score": rng.normal(0, 1, n),
                        "income": pa.array(rng.lognormal(10, 1, n), mask=rng.random(n) < 0.05),
                        "user": np.char.add("user_", rng.integers(0, 5_000_000, n).astype(str)),
                        "colour": colours[rng.integers(0, len(colours), n)],
                        "city": np.char.add("city", rng.zipf(1.5, n).clip(max=10_000).astype(str)),
                    },
                    schema=schema,
                )
            )
            start += n
    return path.stat().st_size


def profile_only(path: str) -> None:
    """Runs in the subprocess: profile one file and print the figures as JSON."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from datasets.profiler import profile_file
    from datasets.profiles import profile_options

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    options = profile_options()
    started = time.perf_counter()
    profile = profile_file(Path(path), "csv", options=options)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "bytes": profile["bytes"],
                "rows": profile["rows"],
                "seconds": round(seconds, 2),
                "mb_per_second": round(profile["bytes"] / 1e6 / seconds, 1),
                "peak_rss_mb": round(peak / 1024, 1),  # ru_maxrss is in KiB on Linux
                "rss_after_imports_mb": round(baseline / 1024, 1),
                "block_bytes": options.block_bytes,
                "blocks": profile["reader"]["blocks"],
                "max_block_rows": profile["reader"]["max_block_rows"],
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="200,1000", help="file sizes in MB, comma-separated")
    parser.add_argument("--profile-only", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.profile_only:
        profile_only(args.profile_only)
        return
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="profile-bench-") as tmp:
        for size in [float(s) for s in args.sizes.split(",")]:
            path = Path(tmp) / f"generated-{size:g}MB.csv"
            started = time.perf_counter()
            actual = generate(path, size)
            print(f"generated {path.name}: {actual:,} bytes in {time.perf_counter() - started:.1f} s", flush=True)
            out = subprocess.run(
                [sys.executable, __file__, "--profile-only", str(path)], check=True, capture_output=True, text=True
            ).stdout
            figures = json.loads(out.strip().splitlines()[-1])
            print(
                f"  profiled {figures['rows']:,} rows in {figures['seconds']} s: {figures['mb_per_second']} MB/s, "
                f"peak RSS {figures['peak_rss_mb']} MB (after imports {figures['rss_after_imports_mb']} MB), "
                f"{figures['blocks']} blocks of <= {figures['max_block_rows']:,} rows "
                f"({figures['block_bytes'] / 2**20:g} MiB)",
                flush=True,
            )
            path.unlink()


if __name__ == "__main__":
    main()
