"""The auth methods: approle, userpass, jwt and aws (the token method is built into core).

Each is an engine like the secrets engines (``factory(MountInfo) -> Engine``),
mounted under ``auth/``; its ``login`` paths are served without a token and
answer ``Response(auth=Auth(...))``, from which core mints the token.
"""
