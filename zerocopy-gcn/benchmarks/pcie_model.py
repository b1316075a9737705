"""PCIe traffic model of the gather kernels: 128-byte line requests, naive vs aligned.

For each row size, rows of a table starting at a 128-byte aligned base are read by the kernels'
thread mapping (:mod:`zerocopy_gcn.fetch.reference`, the same arithmetic as ``gather.cu``);
every (loop step, warp) issues one request per distinct 128-byte line it touches.  Efficiency is
useful bytes / (requests x 128 B); the average is over row start offsets as they occur in the
table (row i starts at ``i * row_bytes mod 128``).  This is the paper's alignment figure,
computed instead of measured.

    python benchmarks/pcie_model.py --out benchmarks/pcie_model
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from trilab.bench import Column, command_line, write_report
from zerocopy_gcn.fetch.reference import LINE_BYTES, line_requests

ROW_BYTES = [64, 96, 128, 192, 256, 300, 400, 512, 600, 1024, 1536, 2048, 2408, 4096]
DENSE_ROW_BYTES = list(range(64, 4097, 32))  # the plot: every 8 fp32 features
COLUMNS = [
    Column("row bytes", "row_bytes"),
    Column("fp32 feats", "fp32_features"),
    Column("requests naive", "lines_naive", "{:.2f}"),
    Column("requests aligned", "lines_aligned", "{:.2f}"),
    Column("distinct lines", "lines_minimum", "{:.2f}"),
    Column("row-aligned lines", "lines_if_row_start_aligned", "{:.0f}"),
    Column("eff. naive", "efficiency_naive", "{:.1%}"),
    Column("eff. aligned", "efficiency_aligned", "{:.1%}"),
    Column("saving", "aligned_saving", "{:.1%}"),
]
NOTE = (
    "4-byte words, table base 128-B aligned. `requests`: 128-B line requests per row summed "
    "over warps (a warp straddling two lines issues two), averaged over the row start "
    "offsets that occur in the table. `distinct lines`: lines the row overlaps (the bytes "
    "moved if requests to one line were merged); `row-aligned lines`: the same if every row "
    "started on a line (the paper's 5 vs 4 lines for 400-B rows)."
)


def row_offsets(row_bytes: int) -> list[int]:
    """Distinct start offsets (mod 128) of the rows of a table with an aligned base."""
    period = LINE_BYTES // math.gcd(row_bytes, LINE_BYTES)
    return [(i * row_bytes) % LINE_BYTES for i in range(period)]


def model_row(row_bytes: int, word_bytes: int = 4) -> dict[str, float]:
    offsets = row_offsets(row_bytes)
    naive = np.mean(
        [line_requests(LINE_BYTES * 8 + o, row_bytes, word_bytes, aligned=False) for o in offsets]
    )
    aligned = np.mean(
        [line_requests(LINE_BYTES * 8 + o, row_bytes, word_bytes, aligned=True) for o in offsets]
    )
    minimum = np.mean([math.ceil((o + row_bytes) / LINE_BYTES) for o in offsets])
    return {
        "row_bytes": row_bytes,
        "fp32_features": row_bytes // 4,
        "word_bytes": word_bytes,
        "lines_naive": float(naive),
        "lines_aligned": float(aligned),
        "lines_minimum": float(minimum),
        "lines_if_row_start_aligned": float(math.ceil(row_bytes / LINE_BYTES)),
        "efficiency_naive": row_bytes / (naive * LINE_BYTES),
        "efficiency_aligned": row_bytes / (aligned * LINE_BYTES),
        "aligned_saving": 1.0 - aligned / naive,
    }


def run(
    out: Path, row_sizes: list[int] | None = None, command: str | None = None
) -> list[dict[str, float]]:
    rows = [model_row(b) for b in (row_sizes or ROW_BYTES)]
    write_report(
        out / "pcie_model",
        rows,
        COLUMNS,
        "PCIe line model of the gather kernels",
        command or command_line([], __file__),
        notes=[NOTE],
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    dense = [model_row(b) for b in DENSE_ROW_BYTES] if row_sizes is None else rows
    sizes = [r["row_bytes"] for r in dense]
    ax.plot(sizes, [r["efficiency_naive"] for r in dense], ".-", lw=0.8, label="naive kernel")
    ax.plot(sizes, [r["efficiency_aligned"] for r in dense], ".-", lw=0.8, label="aligned kernel")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("feature row size (bytes)")
    ax.set_ylabel("useful bytes / bytes requested")
    ax.set_ylim(0, 1.05)
    ax.set_title("PCIe 128-B line efficiency of zero-copy row gathers (model, 4-B words)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "pcie_model.png", dpi=120)
    plt.close(fig)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().with_suffix(""))
    parser.add_argument("--quick", action="store_true", help="three row sizes (for tests)")
    args = parser.parse_args(argv)
    rows = run(args.out, [128, 400, 4096] if args.quick else None, command_line(argv, __file__))
    for r in rows:
        print(
            f"{r['row_bytes']:5d} B  naive {r['lines_naive']:6.2f} lines "
            f"({r['efficiency_naive']:.1%})  aligned {r['lines_aligned']:6.2f} lines "
            f"({r['efficiency_aligned']:.1%})"
        )
    print(f"written: {args.out / 'pcie_model.json'}, .md, .png")


if __name__ == "__main__":
    main()
