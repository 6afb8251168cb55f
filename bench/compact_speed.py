"""CPU inference latency of a dense LSTM and of its compacted 50%-units version, measured side by side.

    python bench/compact_speed.py [--hidden 256] [--layers 2] [--batch 64] [--steps 26] [--threads N] [--unidirectional]

Structured pruning removes half of the hidden units of every layer and direction (magnitude, local),
`compact` builds the smaller network, and both are timed in alternation on the same inputs; the FLOP
ratio counts the recurrent layers' multiply-accumulates per time step. Prints the speed ratio, the
FLOP ratio and their quotient (the goal is a quotient of at least 0.8).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pipeline.models import RNNNet
from pipeline.pruning import masks, select
from pipeline.pruning.compact import compact, macs_per_step
from pipeline.pruning.groups import prunable


def latency(net: torch.nn.Module, x: torch.Tensor, lengths: torch.Tensor) -> float:
    """Seconds for one forward pass."""
    start = time.perf_counter()
    net(x, lengths)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=26)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--unidirectional", action="store_true")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dense = RNNNet("lstm", 12, args.hidden, args.layers, not args.unidirectional, 0.0, 9).eval()
    masks.attach(dense, prunable(dense))
    scores = {name: p.detach().abs() for name, p in dense.named_parameters() if name in masks.read(dense)}
    masks.update(dense, select.structured(dense, scores, masks.read(dense), select.rule("local", 0.5), "sum"))
    small = compact(dense).eval()
    plain = RNNNet(**dense.config).eval()
    plain.load_state_dict(masks.fold(dense))  # the dense network as deployed: no mask buffers
    x, lengths = torch.randn(args.batch, args.steps, 12), torch.full((args.batch,), args.steps)
    with torch.inference_mode():
        assert torch.allclose(plain(x, lengths), small(x, lengths), atol=1e-5)
        for _ in range(10):  # warm-up
            latency(plain, x, lengths), latency(small, x, lengths)
        pairs = [(latency(plain, x, lengths), latency(small, x, lengths)) for _ in range(args.repeats)]
    t_dense, t_small = (statistics.median(p[i] for p in pairs) for i in (0, 1))
    speed, flops = t_dense / t_small, macs_per_step(plain) / macs_per_step(small)
    print(
        f"dense LSTM hidden {args.hidden} x {args.layers} layers, {'uni' if args.unidirectional else 'bi'}directional, "
        f"batch {args.batch} x {args.steps} steps, {torch.get_num_threads()} threads"
    )
    print(f"hidden units kept per layer: {small.config['hidden_size']}")
    print(f"latency: dense {1e3 * t_dense:.2f} ms   compacted {1e3 * t_small:.2f} ms   (median of {args.repeats})")
    print(f"speed ratio {speed:.2f}x   FLOP ratio {flops:.2f}x   speed / FLOP ratio {speed / flops:.2f}")


if __name__ == "__main__":
    main()
