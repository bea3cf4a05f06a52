"""Category suggestion from a report's Chinese text: character 1-2-gram naive Bayes.

Chinese needs no word segmenter for this: character unigrams and bigrams carry most of the
signal of short citizen messages, and a multinomial naive Bayes over them trains in well
under a second on the labelled messages. The measured accuracy on a fixed stratified
held-out split is kept in ``model/classify_metrics.json`` (``python -m workorders.classify``
measures it again and rewrites the file).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = ROOT / "data" / "source" / "messages" / "labelled_messages.csv"
METRICS_FILE = Path(__file__).resolve().parent / "model" / "classify_metrics.json"
SEED = 20261203
TEST_SHARE = 0.2
ALPHA = 0.1
# Place names of the anonymised source ("A市", "A3区") say nothing about the category.
_NOISE = re.compile(r"[A-Za-z0-9\s，。、！？；：“”‘’（）()《》,.!?;:\"'\-—…·/]+")


def features(text: str) -> Counter[str]:
    """Character unigrams and bigrams of the text, punctuation and Latin letters removed."""
    out: Counter[str] = Counter()
    for run in _NOISE.split(text or ""):
        out.update(run)
        out.update(run[i : i + 2] for i in range(len(run) - 1))
    return out


@dataclass
class NaiveBayes:
    classes: list[str] = field(default_factory=list)
    log_prior: np.ndarray = field(default_factory=lambda: np.zeros(0))
    log_lik: dict[str, np.ndarray] = field(default_factory=dict)
    log_unseen: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def fit(cls, texts: list[str], labels: list[str], alpha: float = ALPHA) -> NaiveBayes:
        if len(texts) != len(labels) or not texts:
            raise ValueError("training needs as many labels as texts, and at least one")
        classes = sorted(set(labels))
        idx = {c: i for i, c in enumerate(classes)}
        counts: dict[str, np.ndarray] = {}
        docs = np.zeros(len(classes))
        for text, label in zip(texts, labels, strict=True):
            docs[idx[label]] += 1
            for f, n in features(text).items():
                if f not in counts:
                    counts[f] = np.zeros(len(classes))
                counts[f][idx[label]] += n
        totals = np.sum(list(counts.values()), axis=0) + alpha * len(counts)
        log_tot = np.log(totals)
        return cls(
            classes=classes,
            log_prior=np.log(docs / docs.sum()),
            log_lik={f: np.log(c + alpha) - log_tot for f, c in counts.items()},
            log_unseen=np.log(alpha) - log_tot,
        )

    def scores(self, text: str) -> np.ndarray:
        """Posterior probability per class."""
        logp = self.log_prior.copy()
        for f, n in features(text).items():
            ll = self.log_lik.get(f)
            if ll is not None:  # features never seen in training carry no evidence
                logp += n * ll
        logp -= logp.max()
        p = np.exp(logp)
        return np.asarray(p / p.sum())

    def top(self, text: str, k: int = 3) -> list[tuple[str, float]]:
        s = self.scores(text)
        order = np.argsort(-s, kind="stable")[:k]
        return [(self.classes[i], float(s[i])) for i in order]


def load_messages(path: Path = MESSAGES) -> pd.DataFrame:
    df = pd.read_csv(path, dtype=str).fillna("")
    for col in ("留言主题", "留言详情", "一级分类"):
        if col not in df.columns:
            raise ValueError(f"{path.name}: column {col!r} is missing")
    df["text"] = df["留言主题"] + "。" + df["留言详情"]
    return df[df["一级分类"] != ""].reset_index(drop=True)


def stratified_split(
    labels: list[str], share: float = TEST_SHARE, seed: int = SEED
) -> tuple[list[int], list[int]]:
    """(train, test) row indices: the same share of every class held out, fixed seed."""
    rng = np.random.default_rng(seed)
    train: list[int] = []
    test: list[int] = []
    by_class: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        by_class.setdefault(lab, []).append(i)
    for lab in sorted(by_class):
        rows = np.array(by_class[lab])
        rng.shuffle(rows)
        n_test = max(1, round(len(rows) * share))
        test.extend(int(x) for x in rows[:n_test])
        train.extend(int(x) for x in rows[n_test:])
    return sorted(train), sorted(test)


def evaluate(path: Path = MESSAGES) -> dict[str, object]:
    """Top-1 and top-3 accuracy on the held-out split."""
    df = load_messages(path)
    texts, labels = df["text"].tolist(), df["一级分类"].tolist()
    tr, te = stratified_split(labels)
    model = NaiveBayes.fit([texts[i] for i in tr], [labels[i] for i in tr])
    top1 = top3 = 0
    for i in te:
        got = [c for c, _ in model.top(texts[i], 3)]
        top1 += got[0] == labels[i]
        top3 += labels[i] in got
    return {
        "model": "character 1-2-gram multinomial naive Bayes",
        "alpha": ALPHA,
        "data": "labelled_messages.csv (一级分类)",
        "rows": len(df),
        "classes": sorted(set(labels)),
        "split": {"test_share": TEST_SHARE, "seed": SEED, "stratified": True},
        "train": len(tr),
        "test": len(te),
        "top1": round(top1 / len(te), 4),
        "top3": round(top3 / len(te), 4),
    }


@lru_cache(maxsize=1)
def model() -> NaiveBayes:
    """The suggestion model, trained on every labelled message."""
    df = load_messages()
    return NaiveBayes.fit(df["text"].tolist(), df["一级分类"].tolist())


def suggest(text: str, k: int = 3) -> list[tuple[str, float]]:
    """Top-k (category, probability) for a report's text."""
    if not (text or "").strip():
        raise ValueError("no text to suggest a category from")
    return [(c, round(p, 4)) for c, p in model().top(text, k)]


def write_metrics(path: Path = METRICS_FILE) -> dict[str, object]:
    m = evaluate()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(m, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return m


if __name__ == "__main__":
    print(json.dumps(write_metrics(), ensure_ascii=False, indent=2))
