"""Harvey: grounded drafting of Brazilian legal documents.

Kept import-free on purpose: functions scale from zero, so every heavy module is
imported where it is first needed.
"""

__version__ = "0.1.0"
