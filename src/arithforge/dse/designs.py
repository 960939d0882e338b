"""From a spec to designs and points: which format x datapath combinations make sense, and why
the others are skipped.

A :class:`Design` is one piece of hardware: a datapath (``arithforge.datapaths``) under a sweep
label, with its formats and parameters, the generator parameters that build it, and the GEMM
model of ``arithforge.workloads`` that scores its accuracy. A point is a design on a workload.

Nothing here names a datapath. Each enabled ``[datapaths.LABEL]`` section goes to its
descriptor's :meth:`~arithforge.datapaths.Descriptor.plan`, which says which format combinations
it takes (a reason for each it refuses) and what each design builds and scores; the
descriptor's module docstring documents its sweep. A label is the datapath's name or a named
variant of it (the default spec's ``fma_approx`` is ``fma`` with a normalization window); a
design's label leaves out the parameters at the section's own defaults.

Multi-MAC datapaths (bit-serial PE, LUT core) are normalized per MAC: ``macs`` MACs every
``ii`` cycles (the hardware's ``initiation_interval``, read by the cost stage), so area per
MAC/cycle of throughput is ``area * ii / macs`` and energy per MAC is ``energy / macs``.
"""

from __future__ import annotations

import dataclasses
import itertools

from ..datapaths import Design, Skip, SweepContext
from ..datapaths import get as get_datapath
from .spec import Spec

__all__ = ["DIMENSIONS", "Design", "Skip", "plan", "sweep_context", "with_dimensions"]

#: The explore dimensions beside formats and datapaths: design parameter -> (``[workloads]``
#: key, the value that changes nothing). Each is an argument of
#: :func:`arithforge.workloads.evaluate.evaluate` of the same name.
DIMENSIONS = {"nonlinear": ("nonlinear", "float"), "transform": ("transforms", "none")}


def sweep_context(spec: Spec) -> SweepContext:
    """What a descriptor's ``plan`` reads of ``spec``: the (weights, activations) pairs, the
    accumulators and ``[workloads] scaling``."""
    weights = list(spec.formats.weights)
    acts_list = spec.formats.activations
    pairs = ([(w, w) for w in weights] if acts_list == "same"
             else [(w, a) for w in weights for a in acts_list])
    return SweepContext(tuple(pairs), tuple(spec.formats.accumulators),
                        str(spec.workloads.scaling))


def plan(spec: Spec, hdl_names: frozenset[str] | None = None
         ) -> tuple[list[Design], list[Skip]]:
    """Expand ``spec`` into designs and skipped combinations (each with its reason).

    A label whose datapath has no hardware generator (or, when ``hdl_names`` is given, one not
    in it) is skipped as a whole. Designs that come out twice (the same ``ident``) are kept
    once.
    """
    ctx = sweep_context(spec)
    designs: list[Design] = []
    skips: list[Skip] = []
    sections = spec.datapaths.sections
    for label in spec.datapaths.enabled:
        section = sections[label]
        d = get_datapath(section.datapath)
        if d.generator is None or (hdl_names is not None and d.name not in hdl_names):
            skips.append(Skip(label, "*", "*", "*",
                              f"datapath {d.name!r} has no hardware generator"))
            continue
        defaults = dict(section.defaults)
        for item in d.plan(ctx, label, section.params, section.only):
            if isinstance(item, Skip):
                skips.append(item)
            else:
                # The section's own defaults are left out of the label (a variant's too).
                designs.append(dataclasses.replace(item, defaults=defaults))
    designs = with_dimensions(spec, designs)
    for ref in spec.references:
        d = get_datapath(ref["datapath"])
        designs.append(d.reference_design(ctx, ref))  # type: ignore[attr-defined]
    seen: set[str] = set()
    unique = []
    for design in designs:
        if design.ident not in seen:
            seen.add(design.ident)
            unique.append(design)
    return unique, skips


def with_dimensions(spec: Spec, designs: list[Design]) -> list[Design]:
    """Each design once per nonlinear implementation x transform of ``[workloads]``
    (:data:`DIMENSIONS`), in that order. A value that changes nothing (``float``, ``none``) is
    left out of the design's parameters and model, so a spec without these keys has the
    designs (labels, idents, stored results) it had before; another value is a parameter
    (``e4m3fn/fma,nonlinear=ibert,transform=hadamard:32``) and an argument of ``evaluate``.
    The hardware is the same: cost, accelerator and verification tasks are shared."""
    values = [[(param, v) for v in getattr(spec.workloads, key)]
              for param, (key, _) in DIMENSIONS.items()]
    out = []
    for d in designs:
        for combo in itertools.product(*values):
            extra = {k: v for k, v in combo if v != DIMENSIONS[k][1]}
            defaults = {**d.defaults, **{k: none for k, (_, none) in DIMENSIONS.items()}}
            out.append(dataclasses.replace(d, params={**d.params, **extra},
                                           model={**d.model, **extra}, defaults=defaults))
    return out
