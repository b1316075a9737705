"""Train PyG's GraphSAGE on a zerocopy-gcn graph folder through PyG's own NodeLoader.

The graph folder's feature table, CSR and the project's compiled sampler are used through
PyG's FeatureStore, GraphStore and BaseSampler interfaces; everything else is ordinary PyG.

    python -m zerocopy_gcn.graph.convert rmat products_like data/products_small --num-nodes 20000
    python examples/pyg_sage.py data/products_small --epochs 5
    python examples/pyg_sage.py data/products_small --fetch zerocopy --device cuda   # on a GPU

Two ways to run the same GraphSAGE over a batch (``--layers``):

* ``blocks`` (default): layer i aggregates only the edges of hop L-i into that hop's destination
  nodes, as train.py's block model does: the same computation as train.py, and the least work;
* ``trim``: PyG's usual forward with ``trim_to_layer``, which at layer i computes every node of
  the hops not yet dropped, over all their hops' edges (about twice the work per batch here).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch_geometric.loader import NodeLoader
from torch_geometric.nn.models import GraphSAGE

from zerocopy_gcn.pyg import FolderFeatureStore, FolderGraphStore, FolderNeighborSampler


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="graph folder (python -m zerocopy_gcn.graph.convert)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--fanouts", type=int, nargs="+", default=[15, 10, 5])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.003)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--fetch", default="conventional", help="conventional | zerocopy | gpu")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--layers",
        choices=["blocks", "trim"],
        default="blocks",
        help="blocks: train.py's per-hop computation; trim: GraphSAGE's trim_to_layer forward",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the metrics here")
    args = parser.parse_args(argv)
    for name in ("epochs", "batch_size", "hidden"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if any(fanout < -1 for fanout in args.fanouts):
        parser.error("--fanouts: each is -1 (all neighbours) or a count >= 0")
    if not (args.lr > 0 and 0 <= args.dropout < 1):
        parser.error("--lr must be > 0 and --dropout in [0, 1)")
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: no CUDA device is available")
    return args


def loader_for(stores, sampler, nodes, batch_size, shuffle):
    return NodeLoader(
        stores, node_sampler=sampler, input_nodes=nodes, batch_size=batch_size, shuffle=shuffle
    )


def features(model, data):
    """The batch's features in the model's dtype (the folder may store fp16 or bf16)."""
    return data.x.to(next(model.parameters()).dtype)


def forward_trim(model, data):
    """Logits of the batch's seed nodes; trim_to_layer drops the outer hops layer by layer."""
    out = model(
        features(model, data),
        data.edge_index,
        num_sampled_nodes_per_hop=data.num_sampled_nodes,
        num_sampled_edges_per_hop=data.num_sampled_edges,
    )
    return out[: data.batch_size]


def forward_blocks(model, data):
    """Logits of the batch's seed nodes, layer by layer over one hop each (input layer first).

    FolderNeighborSampler samples, at each hop, the in-edges of every node reached so far, and
    lists nodes and edges hop by hop from the seeds outward.  So the edges of hop ``h`` point
    into the first ``sum(num_sampled_nodes[:h])`` nodes, and a layer needs only those rows as
    its output: ``conv((x, x[:n_dst]), hop_edges)``.  (With PyG's own NeighborSampler, whose hops
    sample only the new nodes, use ``forward_trim``.)
    """
    nodes = data.num_sampled_nodes  # seeds first, then each hop's new nodes
    edges = [0, *torch.tensor(data.num_sampled_edges).cumsum(0).tolist()]
    x = features(model, data)
    layers = len(model.convs)
    for i, conv in enumerate(model.convs):
        hop = layers - i  # the outermost hop feeds the input layer
        n_dst = sum(nodes[:hop])
        x = conv((x, x[:n_dst]), data.edge_index[:, edges[hop - 1] : edges[hop]])
        if i + 1 < layers:  # what GraphSAGE's own forward does between layers
            x = model.dropout(model.act(model.norms[i](x)))
    return x[: data.batch_size]


FORWARDS = {"blocks": forward_blocks, "trim": forward_trim}


@torch.no_grad()
def accuracy(model, loader, device, forward) -> float:
    model.eval()
    correct = total = 0
    for data in loader:
        data = data.to(device)
        labels = data.y[: data.batch_size]
        correct += int((forward(model, data).argmax(-1) == labels).sum())
        total += data.batch_size
    return correct / max(total, 1)


def train_epoch(model, loader, optimizer, forward, device) -> float:
    """One pass over ``loader``; the mean training loss (the device synchronised at the end)."""
    model.train()
    total_loss = seen = 0
    for data in loader:
        data = data.to(device)
        loss = F.cross_entropy(forward(model, data), data.y[: data.batch_size])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * data.batch_size
        seen += data.batch_size
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return total_loss / max(seen, 1)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)

    try:
        feature_store = FolderFeatureStore(args.folder, fetch=args.fetch, device=device)
        graph_store = FolderGraphStore(args.folder)
    except ValueError as error:  # not a graph folder, or a damaged one: the message names it
        print(f"pyg_sage.py: error: {error}", file=sys.stderr)
        sys.exit(2)
    stores = (feature_store, graph_store)
    split = feature_store.get_idx_split()
    num_features = feature_store.get_tensor_size(None, "x")[1]

    train_sampler = FolderNeighborSampler(stores, args.fanouts, seed=args.seed)
    eval_sampler = FolderNeighborSampler(stores, args.fanouts, seed=args.seed + 1)
    train_loader = loader_for(stores, train_sampler, split["train"], args.batch_size, True)
    val_loader = loader_for(stores, eval_sampler, split["valid"], args.batch_size, False)
    test_loader = loader_for(stores, eval_sampler, split["test"], args.batch_size, False)

    model = GraphSAGE(
        num_features,
        args.hidden,
        num_layers=len(args.fanouts),
        out_channels=feature_store.num_classes,
        dropout=args.dropout,
    ).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    forward = FORWARDS[args.layers]
    history = []
    for epoch in range(args.epochs):
        train_sampler.set_epoch(epoch)
        started = time.perf_counter()
        loss = train_epoch(model, train_loader, optimizer, forward, device)
        epoch_s = time.perf_counter() - started
        val_acc = accuracy(model, val_loader, device, forward)
        history.append({"epoch": epoch, "loss": loss, "val_acc": val_acc, "epoch_s": epoch_s})
        print(f"epoch {epoch}: loss {loss:.4f}  val_acc {val_acc:.3f}  {epoch_s:.2f} s")

    test_acc = accuracy(model, test_loader, device, forward)
    metrics = {"layers": args.layers, "history": history, "test_acc": test_acc}
    print(f"test_acc {metrics['test_acc']:.3f}")
    if args.json is not None:
        args.json.write_text(json.dumps(metrics, indent=2))
    feature_store.close()
    return metrics


if __name__ == "__main__":
    main()
