"""``make gpu-check``: one offline check of every GPU path of the three projects, with a report.

Run on a machine with a CUDA GPU and no network, from that machine's own ``python3`` (``make
gpu-check OUT=DIR``), straight from the repository's sources, in at most 9 minutes.  It prints
what it found (GPU, driver, CUDA, PCIe link, torch/CuPy, every missing dependency and what that
costs), runs every GPU test (a GPU test that skips counts as a failure unless a missing
dependency explains it), then the GPU benchmarks of the three projects, most wanted first,
within one time budget, and rewrites ``DIR/<GPU name>.{md,json,log.txt}`` after every phase,
each figure beside its target.

The package knows the projects only through their command lines and JSON outputs.
"""
