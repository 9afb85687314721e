"""Repository tooling run from a checkout (CI, make targets); not part of the installed package."""
