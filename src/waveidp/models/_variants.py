"""The formats of one stored model as `wave fit` chooses among them, with their measured quality."""

from __future__ import annotations

from collections import Counter

from waveidp.catalog.store_manifest import stored_spec
from waveidp.models._store import ModelStore
from waveidp.sizing._fit import Variant


def fit_variants(store: ModelStore, name: str) -> tuple[list[Variant], float | None]:
    """`name`'s family (every stored format linked by "made from"), each with its KLD p95 against the
    reference most of the family was measured against (0 for the reference itself), and the tightest
    KLD limit a stored policy set (None if none)."""
    family = store.family(name)
    against = Counter(q.against for m in family for q in m.manifest.quality)
    reference = against.most_common(1)[0][0] if against else None
    limits = []
    out = []
    for m in family:
        q = next((r for r in reversed(m.manifest.quality) if r.against == reference), None)
        if q is not None and q.policy_max_kld_p95 is not None:
            limits.append(q.policy_max_kld_p95)
        kld = 0.0 if m.name == reference else (q.kld_p95 if q else None)
        spec = stored_spec(m.name, m.folder, m.manifest.weights, m.manifest.source.uri)
        out.append(Variant(spec=spec, kld_p95=kld, refused=bool(q and q.accepted is False)))
    return out, min(limits) if limits else None
