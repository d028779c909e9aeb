"""Managed connections: scope policy for the ID-JAG token exchange (identity-assertion-authz-grant).

Pure and in-process: a :class:`ManagedConnection` holds, for one (tenant, client, audience), the
rule of every scope (``grant``, ``approve``, ``deny``), the RFC 8707 ``resource`` values allowed
for that audience, the lifetime ceiling and the agent's ``client_id`` at the resource AS.
:func:`decide` narrows a request against it (and against the trust link's scope ceiling) and
returns a :class:`Decision`, or raises an :mod:`adapters.errors` type. No I/O: the caller loads
the connections (``tenants``) and the ceiling (``registry``) and passes plain data.

``decide`` applies its rules in this order::

    1. no connection for (client_id, audience)        -> InvalidTarget
    2. resource given and not allowed                   -> InvalidTarget
    3. no scope requested                               -> the connection's `grant` scopes, sorted
    4. per requested scope (deduplicated, order kept):
         malformed scope-token (RFC 6749 §3.3)          -> InvalidScope
         outside the ceiling, or rule `deny`            -> dropped (reported in Decision.dropped)
         rule `approve`                                 -> collected; any -> ApprovalRequired
                                                           (an InvalidScope)
    5. nothing left to grant                            -> InvalidScope
    6. lifetime = min(max_lifetime, requested or max_lifetime, 300), at least 1
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal, get_args

from adapters.errors import InvalidScope, InvalidTarget

Rule = Literal["grant", "approve", "deny"]
RULES: Final[frozenset[str]] = frozenset(get_args(Rule))
ID_JAG_MAX_LIFETIME: Final[int] = 300  # seconds; the ID-JAG is short-lived (5 minutes or less)

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN: Final = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+")
# RFC 6749 §5.2: error_description = 1*( %x20-21 / %x23-5B / %x5D-7E ); used to echo input safely
_NOT_DESCRIPTION_CHAR: Final = re.compile(r"[^\x20\x21\x23-\x5B\x5D-\x7E]")


def is_scope_token(value: str) -> bool:
    """True when ``value`` is one RFC 6749 scope-token (non-empty, no space, quote or backslash)."""
    return _SCOPE_TOKEN.fullmatch(value) is not None


def _echo(value: str, limit: int = 200) -> str:
    """Caller input made safe for an ``error_description``: disallowed characters become ``?``."""
    return _NOT_DESCRIPTION_CHAR.sub("?", value[:limit])


@dataclass(frozen=True, slots=True)
class ManagedConnection:
    """Scope rules for one agent (client) of one tenant reaching one audience (a resource AS)."""

    tenant_id: str
    client_id: str  # the agent's client at this tenant
    audience: str  # the resource AS issuer
    rules: Mapping[str, Rule] = field(hash=False)  # read-only view of a private copy
    remote_client_id: str  # the agent's client_id at the resource AS (the ID-JAG's `client_id`)
    resources: frozenset[str] = frozenset()  # allowed RFC 8707 `resource` values
    max_lifetime: int = ID_JAG_MAX_LIFETIME  # seconds, ceiling for the ID-JAG lifetime
    default_rule: Rule = "deny"  # the rule of every scope not in `rules`
    approver: str | None = None  # who approves `approve` scopes: the user, or "group:<name>"
    # Precomputed for decide(): the same dict `rules` wraps, and the `grant` scopes, sorted.
    _rules: dict[str, Rule] = field(init=False, repr=False, compare=False)
    _grants: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("tenant_id", "client_id", "audience", "remote_client_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"managed connection: {name} must be a non-empty string")
        rules: dict[str, Rule] = dict(self.rules)
        for scope, rule in rules.items():
            if not isinstance(scope, str) or not is_scope_token(scope):
                raise ValueError(f"managed connection: {scope!r} is not a scope-token")
            if rule not in RULES:
                raise ValueError(f"managed connection: rule {rule!r} of {scope!r} is unknown")
        if self.default_rule not in RULES:
            raise ValueError(f"managed connection: default_rule {self.default_rule!r} is unknown")
        resources = frozenset(self.resources)
        if not all(isinstance(r, str) and r for r in resources):
            raise ValueError("managed connection: resources must be non-empty strings")
        lifetime = self.max_lifetime
        if not isinstance(lifetime, int) or isinstance(lifetime, bool) or lifetime < 1:
            raise ValueError("managed connection: max_lifetime must be a positive integer")
        setattr_ = object.__setattr__
        setattr_(self, "_rules", rules)
        setattr_(self, "rules", MappingProxyType(rules))
        setattr_(self, "resources", resources)
        setattr_(self, "_grants", tuple(sorted(s for s, r in rules.items() if r == "grant")))

    @property
    def granted_by_default(self) -> tuple[str, ...]:
        """The scopes issued when a request names none: those whose rule is `grant`, sorted."""
        return self._grants


@dataclass(frozen=True, slots=True)
class Decision:
    """What a managed connection allows for one request; goes into the ID-JAG."""

    granted: tuple[str, ...]  # in request order, deduplicated
    dropped: tuple[str, ...]  # `deny` or above the ceiling: dropped silently but reported
    lifetime: int  # seconds
    resource: str | None
    remote_client_id: str
    defaulted: bool = False  # the request named no scope; `granted` came from the `grant` rules

    @property
    def scope_changed(self) -> bool:
        """True when ``granted`` differs from the request (the response then carries `scope`)."""
        return self.defaulted or bool(self.dropped)

    @property
    def scope(self) -> str:
        """``granted`` as an RFC 6749 space-delimited ``scope`` value."""
        return " ".join(self.granted)


class ApprovalRequired(InvalidScope):
    """Rule 4's `approve` scopes: refused as they stand (``invalid_scope``); ``decision`` is
    what would be granted once a person approves (the caller may start that approval)."""

    def __init__(self, approve: tuple[str, ...], decision: Decision,
                 approver: str | None = None) -> None:
        super().__init__("scopes need approval: " + " ".join(approve))
        self.approve = approve
        self.decision = decision
        self.decision_approver = approver  # the connection's group, or None: the user


class ConnectionIndex:
    """All managed connections of a tenant, indexed for O(1) lookup by (client_id, audience)."""

    __slots__ = ("_by_key", "_tenant_id")

    def __init__(
        self, connections: Iterable[ManagedConnection], *, tenant_id: str | None = None
    ) -> None:
        by_key: dict[tuple[str, str], ManagedConnection] = {}
        for connection in connections:
            if tenant_id is None:
                tenant_id = connection.tenant_id
            elif connection.tenant_id != tenant_id:
                raise ValueError("connection index: connections of more than one tenant")
            key = (connection.client_id, connection.audience)
            if key in by_key:
                raise ValueError(
                    "connection index: two managed connections for client "
                    f"{key[0]!r} and audience {key[1]!r}"
                )
            by_key[key] = connection
        self._by_key: Final = by_key
        self._tenant_id: Final = tenant_id

    @property
    def tenant_id(self) -> str | None:
        """The tenant every connection belongs to (None for an empty index built without one)."""
        return self._tenant_id

    def get(self, client_id: str, audience: str) -> ManagedConnection | None:
        return self._by_key.get((client_id, audience))

    def __len__(self) -> int:
        return len(self._by_key)


def decide(
    index: ConnectionIndex,
    *,
    client_id: str,
    audience: str,
    requested_scopes: Sequence[str] | None,
    resource: str | None = None,
    ceiling: frozenset[str] | None = None,
    requested_lifetime: int | None = None,
) -> Decision:
    """Narrow a request by the managed connection for (client_id, audience) and the ceiling.

    ``requested_scopes`` None means the request named no scope; an empty sequence names none
    and is refused (rule 5). ``ceiling`` None means the trust link sets no ceiling.
    """
    connection = index._by_key.get((client_id, audience))
    if connection is None:
        raise InvalidTarget(f"no managed connection for audience {_echo(audience)}")
    if resource is not None and resource not in connection.resources:
        raise InvalidTarget(f"resource {_echo(resource)} is not served by this audience")

    granted: tuple[str, ...] | list[str]
    dropped: tuple[str, ...] | list[str]
    if requested_scopes is None:
        granted = connection._grants
        dropped = ()
        if ceiling is not None:
            granted = tuple(s for s in connection._grants if s in ceiling)
            dropped = tuple(s for s in connection._grants if s not in ceiling)
    else:
        if isinstance(requested_scopes, str):
            raise TypeError("requested_scopes must be a sequence of scope-tokens, not a str")
        rules = connection._rules
        default_rule = connection.default_rule
        granted, dropped, approve = [], [], []
        seen: set[str] = set()
        for scope in requested_scopes:
            if scope in seen:
                continue
            seen.add(scope)
            rule = rules.get(scope)
            if rule is None:  # keys of `rules` are valid scope-tokens already
                if _SCOPE_TOKEN.fullmatch(scope) is None:
                    raise InvalidScope("malformed scope-token in scope")
                rule = default_rule
            if (ceiling is not None and scope not in ceiling) or rule == "deny":
                dropped.append(scope)
            elif rule == "grant":
                granted.append(scope)
            else:
                approve.append(scope)
        if approve:
            lifetime = min(connection.max_lifetime, requested_lifetime or ID_JAG_MAX_LIFETIME,
                           ID_JAG_MAX_LIFETIME)
            raise ApprovalRequired(tuple(approve), Decision(
                granted=(*granted, *approve), dropped=tuple(dropped), lifetime=max(lifetime, 1),
                resource=resource, remote_client_id=connection.remote_client_id),
                connection.approver)
    if not granted:
        raise InvalidScope("no requested scope may be granted")

    max_lifetime = connection.max_lifetime
    lifetime = min(max_lifetime, requested_lifetime or max_lifetime, ID_JAG_MAX_LIFETIME)
    return Decision(
        granted=tuple(granted),
        dropped=tuple(dropped),
        lifetime=lifetime if lifetime > 1 else 1,
        resource=resource,
        remote_client_id=connection.remote_client_id,
        defaulted=requested_scopes is None,
    )
