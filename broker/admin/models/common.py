"""Base classes and shared constrained types of the admin API's bodies.

Requests (``Body``) are strict: unknown fields refused, no type coercion (``"3600"`` is not a
number), finite numbers only, every string bounded. Responses (``Out``) declare exactly what
is sent; the edge serialises every answer through its declared model. URL fields check their
scheme (``tenants.settings.HttpsUrl``; validation context ``allow_http_loopback``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    ValidationInfo,
    model_validator,
)

from adapters.jose import JWTError, import_public_jwk
from registry.partners import RegistryError, check_issuer
from tenants.settings import HttpsUrl, loopback_allowed

__all__ = ["HttpsUrl"]

M = TypeVar("M", bound=BaseModel)


class Body(BaseModel):
    """A request body: strict, closed, bounded."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False,
                              str_max_length=65_536, validate_by_name=True,
                              validate_by_alias=True)


class Out(BaseModel):
    """A response body: every field always present (null when unset)."""

    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True,
                              validate_by_name=True, validate_by_alias=True,
                              json_schema_serialization_defaults_required=True)


class Empty(Body):
    """No fields: actions that take no input (an empty body is the same)."""


def omitted(**constraints: Any) -> Any:
    """A PATCH field: absent means "unchanged"; ``null`` is refused unless the type allows
    it (``broker.admin.openapi`` leaves the ``None`` default out of the schema)."""
    return Field(None, **constraints)


def parse(model: type[M], data: Any, *, allow_http_loopback: bool) -> M:
    """``data`` (a dict, e.g. built by the CLI) as ``model``: the same validation as the
    HTTP edge's."""
    return model.model_validate(data, context={"allow_http_loopback": allow_http_loopback})


# -- names -------------------------------------------------------------------------------
def named(regex: str, what: str, max_length: int) -> Any:
    """A string of the form ``regex`` (in the schema as ``pattern``), refused saying ``what``
    it must be rather than quoting the regular expression."""
    form = re.compile(regex)

    def check(value: str) -> str:
        if not form.fullmatch(value):
            raise ValueError(what)
        return value

    return Annotated[str, StringConstraints(max_length=max_length), AfterValidator(check),
                     Field(json_schema_extra={"pattern": regex})]


TenantName = named(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$",
                   "a tenant name: 1-64 of a-z, 0-9 and '-', not starting or ending in '-'", 64)
ClientId = named(r"^[A-Za-z0-9._~-]{1,128}$", "1-128 of A-Z a-z 0-9 . _ ~ -", 128)
PartnerId = named(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$",
                  "a partner id: 1-64 of a-z, 0-9 and '-', not starting or ending in '-'", 64)
UpstreamName = named(r"^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?$",
                     "an upstream name: 1-64 of a-z, 0-9, '-' and '_'", 64)
DisplayName = Annotated[str, StringConstraints(
    min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
Text = Annotated[str, StringConstraints(max_length=500, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$")]
Reason = Text
# RFC 6749 §3.3 scope-token: 1*NQCHAR (no space, no quote, no backslash)
Scope = named(r"^[\x21\x23-\x5b\x5d-\x7e]{1,128}$", "a scope token: 1-128 printable ASCII "
              "characters, no space, quote or backslash", 128)
Scopes = Annotated[list[Scope], Field(max_length=100)]
# an audience / resource: a URI or another identifier without spaces
Audience = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,512}$")]
Audiences = Annotated[list[Audience], Field(max_length=100)]
EpochSeconds = Annotated[float, Field(gt=0, le=1e11, description="Unix time, seconds")]


def _issuer(value: str, info: ValidationInfo) -> str:
    try:
        check_issuer(value, allow_http_loopback=loopback_allowed(info))
    except RegistryError as exc:
        raise ValueError(str(exc)) from None
    return value


# an issuer or JWKS location of a peer: https (http loopback in development), host, no
# query, fragment or userinfo; at most 512 characters (the issuer and entity id columns)
ISSUER_MAX = 512
IssuerUrl = Annotated[HttpsUrl, Field(max_length=ISSUER_MAX), AfterValidator(_issuer)]


# -- JSON Web Keys -----------------------------------------------------------------------
PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class PublicJWK(BaseModel):
    """One public key (RFC 7517 §4): EC, RSA or OKP; private members are refused."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True, allow_inf_nan=False)
    kty: Annotated[str, StringConstraints(pattern=r"^(EC|RSA|OKP)$")]
    kid: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = omitted()

    @model_validator(mode="after")
    def _public_only(self) -> PublicJWK:
        extra = self.model_extra or {}
        private = sorted(PRIVATE_JWK_MEMBERS & set(extra))
        if private:
            raise ValueError(f"a public key only: remove {', '.join(private)}")
        if len(extra) > 32 or any(len(k) > 64 for k in extra):
            raise ValueError("at most 32 members, names of at most 64 characters")
        try:
            import_public_jwk(self.model_dump(exclude_none=True))
        except JWTError as exc:
            raise ValueError(f"not a usable public key: {exc}") from None
        except Exception:  # the JOSE library's parser on hostile input: refuse, never fail
            raise ValueError("not a usable public key") from None
        return self


class JWKS(Body):
    keys: Annotated[list[PublicJWK], Field(min_length=1, max_length=20)]

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


JsonObject = Annotated[dict[str, JsonValue], Field(json_schema_extra={"type": "object"})]


class FieldErrorOut(Out):
    field: str
    message: str


class ErrorOut(Out):
    """Every refusal: the OAuth-style code, a description, and the field it is about."""

    model_config = ConfigDict(extra="forbid", frozen=True,
                              json_schema_serialization_defaults_required=False)

    error: str
    error_description: str | None = None
    field: str | None = None
    errors: list[FieldErrorOut] | None = None
