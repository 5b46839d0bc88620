"""The ``mparticle-dest`` command (click, optional extra ``cli``): demo, validate, send."""

from .main import run

__all__ = ["run"]
