#!/usr/bin/env python3
"""BLEU oracle: NLTK's corpus_bleu (Debian python3-nltk) on corpora the C++ test generates.

Reads {"corpora": [{"references": [[[token, ...], ...], ...], "hypotheses": [[token, ...], ...]}]}
and writes {"bleu": [[BLEU-1, BLEU-2, BLEU-3, BLEU-4], ...]} with uniform cumulative weights and
no smoothing (NLTK's defaults).
"""
import argparse
import json
import warnings

from nltk.translate.bleu_score import corpus_bleu


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("input")
    parser.add_argument("output")
    args = parser.parse_args()
    with open(args.input) as f:
        corpora = json.load(f)["corpora"]
    weights = [(1.0,), (0.5, 0.5), (1 / 3, 1 / 3, 1 / 3), (0.25, 0.25, 0.25, 0.25)]
    scores = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NLTK warns when an n-gram order has no match
        for corpus in corpora:
            scores.append(
                [corpus_bleu(corpus["references"], corpus["hypotheses"], weights=w) for w in weights]
            )
    with open(args.output + ".tmp", "w") as f:
        json.dump({"bleu": scores}, f)
    import os

    os.replace(args.output + ".tmp", args.output)


if __name__ == "__main__":
    main()
