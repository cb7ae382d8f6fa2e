"""JWT access and execution tokens (HS256, strictly verified) and opaque refresh tokens."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from flowql.errors import Unauthorized

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "typ"]
# Claims a token type cannot be used without (an execution token names its workspace).
REQUIRED_BY_TYPE = {"execution": ["ws"]}
EXECUTION_AUDIENCE_SUFFIX = "-exec"


@dataclass(frozen=True)
class TokenIssuer:
    secret_key: str
    issuer: str
    audience: str

    @property
    def execution_audience(self) -> str:
        return self.audience + EXECUTION_AUDIENCE_SUFFIX

    def issue(self, subject: str, ttl: int, typ: str = "access", **claims: Any) -> str:
        now = datetime.now(UTC)
        payload = {
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + timedelta(seconds=ttl),
            "iss": self.issuer,
            "aud": self.execution_audience if typ == "execution" else self.audience,
            "typ": typ,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        return jwt.encode(payload, self.secret_key, algorithm=ALGORITHM)

    def verify(self, token: str, typ: str = "access") -> dict[str, Any]:
        """Pinned algorithm; exp, iat, iss, aud and sub required; anything else is refused."""
        audience = self.execution_audience if typ == "execution" else self.audience
        claims = self._decode(token, [audience], REQUIRED_BY_TYPE.get(typ, []))
        if claims.get("typ") != typ:
            raise Unauthorized("wrong token type")
        return self._checked(claims, typ)

    def verify_bearer(self, token: str) -> dict[str, Any]:
        """`verify` as the type the token says it is (an access or an execution token), in one
        decode: the signature, expiry, issuer and the audience of that type, all as strictly."""
        claims = self._decode(token, [self.audience, self.execution_audience], [])
        typ = claims.get("typ")
        if typ not in ("access", "execution"):
            raise Unauthorized("wrong token type")
        expected = self.execution_audience if typ == "execution" else self.audience
        if claims.get("aud") != expected:
            raise Unauthorized("invalid token")
        if any(name not in claims for name in REQUIRED_BY_TYPE.get(typ, [])):
            raise Unauthorized("invalid token")
        return self._checked(claims, typ)

    def _decode(self, token: str, audiences: list[str], required: list[str]) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("malformed token") from exc
        if header.get("alg") != ALGORITHM:
            raise Unauthorized("token algorithm not accepted")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.secret_key,
                algorithms=[ALGORITHM],
                audience=audiences,
                issuer=self.issuer,
                options={"require": REQUIRED_CLAIMS + required, "verify_iat": True},
                leeway=5,
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("token expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized("invalid token") from exc
        return claims

    def _checked(self, claims: dict[str, Any], typ: str) -> dict[str, Any]:
        iat = claims["iat"]
        if isinstance(iat, int | float) and iat > datetime.now(UTC).timestamp() + 30:
            raise Unauthorized("token issued in the future")
        return claims


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("ey")


def new_opaque_token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def hash_token(token: str) -> str:
    """Opaque tokens carry 256 bits of entropy, so a plain SHA-256 is a safe lookup hash."""
    return hashlib.sha256(token.encode()).hexdigest()
