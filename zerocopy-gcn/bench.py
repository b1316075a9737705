"""Benchmarks of the fetch modes: python bench.py --out benchmarks (see zerocopy_gcn.bench)."""

from zerocopy_gcn.bench import main

if __name__ == "__main__":
    main()
