"""The cleaning library of silver: one module per kind of messy value (phones, emails, names,
addresses, ID cards, money, dates). Each exposes null-safe Spark Column functions and, where
useful, a pure-Python twin (`*_py`) with the same rules."""
