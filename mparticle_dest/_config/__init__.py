"""The typed destination config: frozen attrs classes and the cattrs boundary.

``model`` holds the classes (each checks its own local invariants); ``converter`` turns a
walkerOS destination-config dict (camelCase, as in a ``flow.json``) into them and back,
reporting every problem with its key path.
"""

from .model import BatchOptions, DestinationConfig, LimitPolicy, Rule, RuleSettings, Settings

__all__ = ["BatchOptions", "DestinationConfig", "LimitPolicy", "Rule", "RuleSettings", "Settings"]
