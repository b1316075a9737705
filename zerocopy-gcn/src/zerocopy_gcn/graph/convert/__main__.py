"""``python -m zerocopy_gcn.graph.convert``: see :mod:`zerocopy_gcn.graph.convert.cli`."""

from zerocopy_gcn.graph.convert.cli import main

main()
