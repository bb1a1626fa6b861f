"""Prompt complexity in [0, 1], with the terms that produced it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ComplexityScore", "ComplexityTerm"]


@dataclass(frozen=True, slots=True)
class ComplexityTerm:
    name: str
    contribution: float
    detail: str


@dataclass(frozen=True, slots=True)
class ComplexityScore:
    score: float
    terms: tuple[ComplexityTerm, ...]
