"""Comparison models for the composition prior benchmark (not shipped): a small Roost-style
network on element embeddings (torch, CPU) and a k-nearest-neighbour regressor on the Magpie
features. Both train on the same formulas and energies as the shipped tree model.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from matloop.generation.composition_features import (
    element_table,
    featurize,
    padded_fractions,
    symbols,
)


def element_embeddings() -> np.ndarray:
    """(118, 222): matscholar word embeddings (200, zero where absent) and standardised
    Magpie properties (22), both from files inside the matminer wheel."""
    import matminer

    path = os.path.join(os.path.dirname(matminer.__file__), "utils", "data_files",
                        "matscholar_els.json")
    with open(path) as handle:
        mat = json.load(handle)
    emb = np.zeros((len(symbols()), 200))
    for i, s in enumerate(symbols()):
        if s in mat:
            emb[i] = mat[s]
    props = element_table()
    props = (props - props.mean(axis=0)) / (props.std(axis=0) + 1e-9)
    return np.hstack([emb, props]).astype(np.float32)


def _net(torch: Any, n_in: int, width: int = 96, layers: int = 2) -> Any:
    nn = torch.nn

    class RoostLite(nn.Module):
        """Elements as nodes of a complete graph; fraction-weighted soft attention (Roost,
        Goodall & Lee 2020) in ``layers`` message-passing steps, then weighted pooling."""

        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Linear(n_in + 1, width)
            self.gates = nn.ModuleList([nn.Sequential(nn.Linear(2 * width, width), nn.SiLU(),
                                                      nn.Linear(width, 1))
                                        for _ in range(layers)])
            self.msgs = nn.ModuleList([nn.Sequential(nn.Linear(2 * width, width), nn.SiLU(),
                                                     nn.Linear(width, width))
                                       for _ in range(layers)])
            self.pool_gate = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 1))
            self.head = nn.Sequential(nn.Linear(width, 2 * width), nn.SiLU(),
                                      nn.Linear(2 * width, width), nn.SiLU(), nn.Linear(width, 1))

        def forward(self, emb: Any, frac: Any, mask: Any) -> Any:
            h = self.embed(torch.cat([emb, frac[..., None]], dim=-1))
            logw = torch.log(frac.clamp_min(1e-9))
            neg = torch.finfo(h.dtype).min
            k = h.shape[1]
            for gate, msg in zip(self.gates, self.msgs, strict=True):
                pair = torch.cat([h[:, :, None, :].expand(-1, -1, k, -1),
                                  h[:, None, :, :].expand(-1, k, -1, -1)], dim=-1)
                logits = gate(pair).squeeze(-1) + logw[:, None, :]
                logits = logits.masked_fill(~mask[:, None, :], neg)
                att = torch.softmax(logits, dim=-1)
                h = h + (att[..., None] * msg(pair)).sum(dim=2)
            logits = self.pool_gate(h).squeeze(-1) + logw
            att = torch.softmax(logits.masked_fill(~mask, neg), dim=-1)
            return self.head((att[..., None] * h).sum(dim=1)).squeeze(-1)

    return RoostLite()


class RoostLiteModel:
    """Train and predict the network (L1 loss, Adam, one thread, fixed seed)."""

    name = "roost-lite (torch, matscholar+magpie element embeddings)"

    def __init__(self, *, epochs: int = 40, batch: int = 256, seconds: float = 600.0,
                 seed: int = 0) -> None:
        self.epochs, self.batch, self.seconds, self.seed = epochs, batch, seconds, seed
        self.net: Any = None
        self.epochs_run = 0

    def _tensors(self, formulas: Sequence[str]) -> tuple[Any, Any, Any]:
        import torch

        idx, frac, mask = padded_fractions(list(formulas))
        k = int(mask.sum(axis=1).max())
        emb = torch.from_numpy(element_embeddings()[idx[:, :k]])
        return emb, torch.from_numpy(frac[:, :k].astype(np.float32)), torch.from_numpy(
            mask[:, :k])

    def fit(self, formulas: Sequence[str], y: np.ndarray) -> RoostLiteModel:
        """Train for ``epochs`` or until ``seconds`` have passed (cosine learning rate)."""
        import torch

        torch.manual_seed(self.seed)
        torch.set_num_threads(1)
        emb, frac, mask = self._tensors(formulas)
        target = torch.from_numpy(np.asarray(y, dtype=np.float32))
        self.net = _net(torch, emb.shape[-1])
        opt = torch.optim.AdamW(self.net.parameters(), lr=2e-3, weight_decay=1e-5)
        n_el_all = mask.sum(dim=1)
        steps = self.epochs * sum(int(np.ceil(int((n_el_all == k).sum()) / self.batch))
                                  for k in torch.unique(n_el_all).tolist())
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
        gen = torch.Generator().manual_seed(self.seed)
        started = time.perf_counter()
        n_el = mask.sum(dim=1)
        for epoch in range(self.epochs):
            # batches of equal element count, so the pair tensors are not padded
            batches = []
            for k in torch.unique(n_el).tolist():
                idx = torch.nonzero(n_el == k).squeeze(1)
                idx = idx[torch.randperm(len(idx), generator=gen)]
                batches += [(k, idx[i:i + self.batch]) for i in range(0, len(idx), self.batch)]
            order = torch.randperm(len(batches), generator=gen).tolist()
            for j in order:
                k, b = batches[j]
                loss = torch.nn.functional.l1_loss(
                    self.net(emb[b, :k], frac[b, :k], mask[b, :k]), target[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
            self.epochs_run = epoch + 1
            if time.perf_counter() - started > self.seconds:
                break
        return self

    def predict(self, formulas: Sequence[str]) -> np.ndarray:
        """Formation energies, eV/atom."""
        import torch

        emb, frac, mask = self._tensors(formulas)
        out = []
        with torch.no_grad():
            for start in range(0, len(frac), 4096):
                s = slice(start, start + 4096)
                out.append(self.net(emb[s], frac[s], mask[s]).numpy())
        return np.concatenate(out).astype(float)


class KNNModel:
    """Distance-weighted k nearest neighbours on standardised Magpie features."""

    name = "knn (k=8, distance-weighted, standardised Magpie features)"

    def __init__(self, k: int = 8) -> None:
        self.k = k
        self.model: Any = None

    def fit(self, formulas: Sequence[str], y: np.ndarray) -> KNNModel:
        """Store the standardised training features."""
        from sklearn.neighbors import KNeighborsRegressor
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        x = featurize(list(formulas))[:, :146]
        self.model = make_pipeline(StandardScaler(), KNeighborsRegressor(
            n_neighbors=self.k, weights="distance")).fit(x, y)
        return self

    def predict(self, formulas: Sequence[str]) -> np.ndarray:
        """Formation energies, eV/atom."""
        return self.model.predict(featurize(list(formulas))[:, :146])




def main(argv: list[str] | None = None) -> int:
    """Train both comparison models on fold 0 of the chemical-system folds and print MAEs
    (the full comparison, with the tree model, is part of ``evals.composition_prior``)."""
    import argparse

    from matloop.generation.composition_model import chemsys_of_formula, fold_of, training_set

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args(argv)
    formulas, y = training_set()
    test = np.array([fold_of(chemsys_of_formula(f)) == 0 for f in formulas])
    f_tr = [f for f, t in zip(formulas, test, strict=True) if not t]
    f_te = [f for f, t in zip(formulas, test, strict=True) if t]
    for model in (KNNModel(), RoostLiteModel(epochs=args.epochs)):
        pred = model.fit(f_tr, y[~test]).predict(f_te)
        print(f"{model.name}: MAE {np.mean(np.abs(pred - y[test])):.4f} eV/atom")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
