"""Zero-copy feature gathering for minibatch GNN training on graphs larger than GPU memory."""

__version__ = "0.1.0"
