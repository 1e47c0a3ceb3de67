"""The formats of one stored model as `wave fit` chooses among them, with their measured quality."""

from __future__ import annotations

from waveidp.models._describe import stored_spec
from waveidp.models._store import ModelStore
from waveidp.sizing._fit import Variant


def fit_variants(store: ModelStore, name: str) -> tuple[list[Variant], float | None]:
    """`name`'s family (its base and every model made from the base), each with its KLD p95 against
    the base (0 for the base itself), and the tightest KLD limit a stored policy set (None if none)."""
    family = store.family(name)
    root = family[0].name
    measured_against_root = False
    limits = []
    out = []
    for m in family:
        q = next((r for r in reversed(m.manifest.quality) if r.against == root), None)
        if q is not None:
            measured_against_root = True
            if q.policy_max_kld_p95 is not None:
                limits.append(q.policy_max_kld_p95)
        spec = stored_spec(m.name, m.folder, m.manifest.weights, m.manifest.source.uri)
        out.append(
            Variant(
                spec=spec,
                kld_p95=q.kld_p95 if q else None,
                refused=bool(q and q.accepted is False),
            )
        )
    if measured_against_root:
        out = [v if v.spec.id != root else v.model_copy(update={"kld_p95": 0.0}) for v in out]
    # the requested name keys the variants: fit_node looks them up by the model it was given
    return out, min(limits) if limits else None
