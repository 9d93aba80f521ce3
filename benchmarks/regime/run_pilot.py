"""One regime-map cell (issue 12): a recurring stream, 0.5B weak / 1.5B strong by default.

Runs ``weak``, ``strong`` and ``intercascade`` of ``run_evaluation`` on one of
``streams.STREAMS`` (``--stream``) in stream order (no shuffle), so every weak answer is
paired: without strategies (``weak``) and with the strategies the bank retrieves
(``intercascade``'s ``weak_correct``). The cascade's threshold is infinite, so
Inter-Cascade defers every question and the strong model distils a strategy from
each one (package default distill prompt, method-only form); the self-check judge
still scores every weak answer, and ``analyze_pilot.py`` replays it at 0.99.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from langchain_intercascade import CascadePrompts
from langchain_intercascade.evaluation import EvaluationConfig, run_evaluation
from langchain_intercascade.testing import BagOfWordsEmbeddings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_benchmark import SYSTEM_PROMPT, SelfCheckJudge, chat_model  # noqa: E402
from streams import STREAMS  # noqa: E402

MODELS = Path.home() / ".cache" / "intercascade" / "models"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--weak-model", default=str(MODELS / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
    )
    parser.add_argument(
        "--strong-model", default=str(MODELS / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf")
    )
    parser.add_argument("--stream", choices=sorted(STREAMS), default="easy")
    parser.add_argument("--per-template", type=int, default=6)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--weak-max-tokens", type=int, default=200)
    parser.add_argument("--strong-max-tokens", type=int, default=300)
    parser.add_argument("--cache", default="/tmp/regime-calls.sqlite")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    weak = chat_model(args.weak_model, args.weak_max_tokens, 2048, args.threads)
    strong = chat_model(args.strong_model, args.strong_max_tokens, 2048, args.threads)
    config = EvaluationConfig(
        limit=args.limit,
        seed=args.seed,
        shuffle=False,
        configurations=["weak", "strong", "intercascade"],
        threshold=float("inf"),
        judge=SelfCheckJudge(),
        prompts=CascadePrompts(),
        system_prompt=SYSTEM_PROMPT,
        cache_path=Path(args.cache),
        output_dir=Path(args.out),
    )
    result = run_evaluation(
        config,
        weak=weak,
        strong=strong,
        # Strategies are keyed by their source question; hashed word counts match
        # instances of one template (numbers and names aside). MiniLM is not installed.
        embeddings=BagOfWordsEmbeddings(),
        examples=STREAMS[args.stream](args.per_template, args.seed),
    )
    print(result.to_markdown())


if __name__ == "__main__":
    main()
