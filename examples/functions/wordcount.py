"""A function for examples/control-plane.ts: counts the words of a file on the app's disk."""

import collections


def count(path, top=3):
    with open(path) as f:
        words = f.read().split()
    print("counted %d words" % len(words), flush=True)
    return collections.Counter(words).most_common(top)
