"""Tiny-model generation on CPU: the transformers backend's one-thread policy vs torch's default thread count.

    python bench/generation.py [--batches 3] [--batch-size 16] [--new-tokens 48]

Builds the tiny random model, then generates the same Rule2Code-shaped batches (long prompts, as synthesis sends)
twice in this process: with torch's default intra-op threads and with one thread (what the backend picks for a
small model on CPU unless OMP_NUM_THREADS is set). Prints wall and CPU seconds of each and the ratios. The result
depends on how busy the machine is; run it on the node type you care about.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=48)
    args = parser.parse_args()

    import torch

    from purpcode.data.rules import load_rules
    from purpcode.generation.hf import TransformersBackend
    from purpcode.synthesis.rule2code import seed_conversation
    from purpcode.tiny_model import build_tiny_model

    default_threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        build_tiny_model(tmp)
        backend = TransformersBackend(
            tmp,
            seed=1,
            temperature=0.8,
            top_p=1.0,
            max_new_tokens=args.new_tokens,
            batch_size=args.batch_size,
        )
        rules = load_rules()
        convs = [seed_conversation(r) for r in rules][: args.batches * args.batch_size]
        backend.generate(convs[: args.batch_size])  # warm-up

        def timed(threads: int) -> tuple[float, float]:
            torch.set_num_threads(threads)
            cpu0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime
            t0 = time.perf_counter()
            backend.generate(convs)
            return time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu0

        base_wall, base_cpu = timed(default_threads)
        one_wall, one_cpu = timed(1)
    print(f"conversations: {len(convs)}, new tokens: {args.new_tokens}, default threads: {default_threads}")
    print(f"default threads: wall {base_wall:.2f}s cpu {base_cpu:.2f}s")
    print(f"one thread:      wall {one_wall:.2f}s cpu {one_cpu:.2f}s")
    print(
        f"ratio (default / one thread): wall {base_wall / one_wall:.2f}x, cpu {base_cpu / max(one_cpu, 1e-9):.2f}x"
    )


if __name__ == "__main__":
    main()
