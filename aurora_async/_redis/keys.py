"""Key names of one namespace, and the token ids that stand for secrets in Redis.

Every key of a namespace starts with the hash tag ``{aurora:<namespace>}``, so they all
hash to one Redis Cluster slot and one Lua script may touch any of them. A token appears
in Redis only by its *id*: an HMAC-SHA256 of the secret keyed by the namespace, in hex,
truncated to 80 bits. Ids are stable (every worker computes the same id for the same
token), never reveal the secret, and differ between namespaces.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

#: Hex digits of a token id: 80 bits, so ids of a million tokens collide with
#: probability below 1e-12.
ID_LENGTH = 20
_MAX_NAMESPACE = 200


def token_id(namespace: str, secret: str) -> str:
    """The id of ``secret`` in ``namespace``: keyed hash, hex, truncated."""
    digest = hmac.new(namespace.encode(), secret.encode(), hashlib.sha256).hexdigest()
    return digest[:ID_LENGTH]


def membership_digest(ids: list[str]) -> str:
    """A short digest of a set of token ids (workers with the same token file agree)."""
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:16]


def check_namespace(namespace: object) -> str:
    if not isinstance(namespace, str):
        raise TypeError(f"namespace must be a str, not {type(namespace).__name__}")
    if not namespace or len(namespace) > _MAX_NAMESPACE:
        raise ValueError(f"namespace must be 1 to {_MAX_NAMESPACE} characters, got {namespace!r}")
    bad = [c for c in namespace if c in "{}" or c.isspace() or not c.isprintable()]
    if bad:
        raise ValueError(
            f"namespace {namespace!r} may not contain braces, white space or control "
            "characters (it becomes part of a Redis Cluster hash tag)"
        )
    return namespace


@dataclass(frozen=True, slots=True)
class Keys:
    """The Redis keys of one namespace (all in one Cluster hash slot)."""

    namespace: str
    tag: str = field(init=False)
    #: sorted set: token id -> when it can next fire its unit cost (server µs)
    ready: str = field(init=False)
    #: hash: ``v`` (version of disabled states and membership)
    meta: str = field(init=False)
    #: hash: token id -> reason, for every disabled token
    disabled: str = field(init=False)
    #: sorted set: worker id -> last seen (server ms)
    procs: str = field(init=False)
    #: hash: worker id -> digest of its token set
    digests: str = field(init=False)
    #: set: every token id registered in the namespace (for reset and inspect)
    ids: str = field(init=False)
    #: list: one entry per reservation when auditing ("<µs> <id> <cost> <worker>", the
    #: cost being requests, then ",unit=units" per other resource and ",@scope")
    audit: str = field(init=False)
    #: string: when the namespace's last reserve call ran (server µs)
    last: str = field(init=False)
    #: string: when the namespace's reserve calls last came back after a silence longer
    #: than a worker's call timeout (server µs; see ``scripts.RESUME``)
    gap: str = field(init=False)
    #: prefix of token hashes (``+ id``) and of worker token sets (``+ worker id``)
    token_prefix: str = field(init=False)
    proc_prefix: str = field(init=False)

    def __post_init__(self) -> None:
        tag = "{aurora:" + check_namespace(self.namespace) + "}"
        set_ = object.__setattr__
        set_(self, "tag", tag)
        set_(self, "ready", f"{tag}:ready")
        set_(self, "meta", f"{tag}:meta")
        set_(self, "disabled", f"{tag}:disabled")
        set_(self, "procs", f"{tag}:procs")
        set_(self, "digests", f"{tag}:digests")
        set_(self, "ids", f"{tag}:ids")
        set_(self, "audit", f"{tag}:audit")
        set_(self, "last", f"{tag}:last")
        set_(self, "gap", f"{tag}:gap")
        set_(self, "token_prefix", f"{tag}:t:")
        set_(self, "proc_prefix", f"{tag}:p:")

    def token(self, tid: str) -> str:
        return self.token_prefix + tid

    def proc(self, worker: str) -> str:
        return self.proc_prefix + worker

    def staging(self, worker: str) -> str:
        """Where a worker builds its next token set while a sync is in progress."""
        return self.proc_prefix + worker + ":next"
