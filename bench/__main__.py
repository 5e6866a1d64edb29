"""``python -m bench``: compare raw asyncpg, SQLAlchemy ORM, advanced-alchemy and this library.

``python -m bench [--quick]`` runs the comparison table; ``python -m bench scale [--rows N]``
fills the signals table to 100,000 and then N rows (5,000,000) and compares reads, ingest
rate and memory at both sizes, and on a read replica.
``python -m bench frames`` times a 100,000-signal DataFrame against the raw asyncpg fetch.
See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import sys

from bench.server import bench_server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "mode", nargs="?", choices=("compare", "scale", "profile", "frames"), default="compare"
    )
    parser.add_argument("--quick", action="store_true", help="small counts (under 3 minutes)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per cell (5)")
    parser.add_argument("--only", help="comma-separated operation keys, e.g. 1,2,7a")
    parser.add_argument("--peers", help="comma-separated peers: asyncpg,orm,aa,lib")
    parser.add_argument(
        "--rows", type=int, default=5_000_000, help="scale: final signal rows (5,000,000)"
    )
    parser.add_argument(
        "--ingest",
        choices=("daily", "backfill"),
        default="daily",
        help="scale: the bulk rows as a daily feed (default) or a random-date backfill",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin client and server CPUs")
    parser.add_argument("--keep", action="store_true", help="keep the server's data folder")
    args = parser.parse_args(argv)

    with bench_server(pin=not args.no_pin, keep=args.keep) as server:
        if args.mode == "profile":
            import asyncio  # noqa: PLC0415

            from bench.harness import profile  # noqa: PLC0415

            asyncio.run(
                profile(
                    server, op_key=args.only or "1", peer_key=args.peers or "lib", quick=args.quick
                )
            )
        elif args.mode == "frames":
            from bench.frames import run_frames  # noqa: PLC0415

            run_frames(server, repeats=args.repeats)
        elif args.mode == "scale":
            from bench.scale import run_scale  # noqa: PLC0415

            run_scale(server, final_rows=args.rows, quick=args.quick, shape=args.ingest)
        else:
            from bench.harness import run_compare  # noqa: PLC0415

            run_compare(
                server,
                quick=args.quick,
                repeats=args.repeats,
                only=args.only.split(",") if args.only else None,
                peers=args.peers.split(",") if args.peers else None,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
