"""Command line: convert or generate a graph folder once.

python -m zerocopy_gcn.graph.convert ogb  PATH/ogbn_products  data/products
python -m zerocopy_gcn.graph.convert npz  graph.npz            data/mygraph
python -m zerocopy_gcn.graph.convert rmat papers_like_small    data/papers_small [--num-nodes N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from trilab.errors import UserError, report_user_errors
from zerocopy_gcn.graph.convert.npz import convert_npz
from zerocopy_gcn.graph.convert.ogb import convert_ogb_node_folder
from zerocopy_gcn.graph.convert.staging import staged_output
from zerocopy_gcn.graph.rmat import PRESETS, generate_rmat, preset_spec


def main(argv: list[str] | None = None) -> None:
    """Bad input (a missing file, an existing output folder, malformed data, a full disk)
    ends with a one-line message naming the file and exit status 2."""
    report_user_errors(lambda: _convert(argv), program="zerocopy_gcn.graph.convert")


def _convert(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m zerocopy_gcn.graph.convert",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("kind", choices=["ogb", "npz", "rmat"])
    parser.add_argument(
        "source",
        help=f"OGB dataset folder, .npz file, or R-MAT preset name ({', '.join(sorted(PRESETS))})",
    )
    parser.add_argument("out", help="graph folder to write")
    parser.add_argument("--split", default=None, help="OGB split scheme folder name")
    parser.add_argument("--no-reverse", action="store_true", help="OGB: keep edges one-way")
    parser.add_argument("--symmetric", action="store_true", help="npz: add reverse edges")
    parser.add_argument("--num-nodes", type=int, default=None, help="rmat: shrink the preset")
    parser.add_argument("--avg-degree", type=float, default=None)
    parser.add_argument("--feat-dtype", default=None, choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.kind == "ogb":
        out = convert_ogb_node_folder(
            args.source, args.out, split=args.split, add_reverse=not args.no_reverse
        )
    elif args.kind == "npz":
        out = convert_npz(args.source, args.out, symmetric=args.symmetric)
    else:
        if args.source not in PRESETS:
            raise UserError(
                f"unknown R-MAT preset {args.source!r}; choose one of {sorted(PRESETS)}"
            )
        if args.num_nodes is not None and args.num_nodes < 1:
            raise UserError(f"--num-nodes must be at least 1, got {args.num_nodes}")
        spec = preset_spec(
            args.source,
            num_nodes=args.num_nodes,
            avg_degree=args.avg_degree,
            feat_dtype=args.feat_dtype,
            seed=args.seed,
        )
        out = Path(args.out)
        # staged like the converters: an interrupted generation leaves no folder behind
        with staged_output(out) as work:
            generate_rmat(work, spec, name=args.source)
    print(f"graph folder written: {out}")
