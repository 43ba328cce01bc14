"""coffer: a secrets server that speaks Vault's HTTP API."""

__version__ = "0.1.0"
