"""Throughput benchmark: python bench.py --out benchmarks [--archs resnet18 resnet50] [--iters 3]"""

from drag.bench import main

if __name__ == "__main__":
    main()
