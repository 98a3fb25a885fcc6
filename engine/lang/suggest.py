"""Did-you-mean suggestions by edit distance."""

from __future__ import annotations

from collections.abc import Iterable


def distance(a: str, b: str) -> int:
    """Edit distance counting a swap of two neighbours as one edit (optimal string alignment)."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            row[j] = min(rows[i - 1][j] + 1, row[j - 1] + 1, rows[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[i - 2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate, if close enough to be a plausible typo.

    Case-only differences always match (names are case-sensitive, a common slip); otherwise at most
    a third of the word may differ.
    """
    best: str | None = None
    best_score = 10**9
    lowered = word.lower()
    limit = max(1, len(word) // 3)
    for candidate in candidates:
        if candidate == word:
            continue
        if candidate.lower() == lowered:
            return candidate
        if abs(len(candidate) - len(word)) > limit:
            continue
        score = distance(lowered, candidate.lower())
        if score <= limit and score < len(word) and score < best_score:
            best, best_score = candidate, score
    return best


def did_you_mean(hint: str | None) -> str:
    """The one wording of a suggestion appended to a message (empty without one)."""
    return f". Did you mean '{hint}'?" if hint else ""
