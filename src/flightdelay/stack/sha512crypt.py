"""SHA-512 crypt (`$6$`, Ulrich Drepper's scheme), the one htpasswd scheme both nginx builds
verify: Debian's (glibc crypt) natively and the alpine image's (musl crypt) in compose.

Pure Python, no dependency: the standard `crypt` module is deprecated and gone in Python 3.13.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

ROUNDS = 5000  # the default; `rounds=` is then left out of the hash
_B64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# the byte order of the final encoding (groups of three digest bytes, then the last one)
_ORDER = [((i, i + 21, i + 42), (i + 21, i + 42, i), (i + 42, i, i + 21))[i % 3] for i in range(21)]


def _repeat(digest: bytes, length: int) -> bytes:
    """`digest` repeated to `length` bytes."""
    return (digest * (length // 64 + 1))[:length]


def _initial(password: bytes, salt: bytes) -> bytes:
    """Digest A of the scheme (steps 1-12)."""
    b = hashlib.sha512(password + salt + password).digest()
    a = hashlib.sha512(password + salt + _repeat(b, len(password)))
    n = len(password)
    while n:
        a.update(b if n & 1 else password)
        n >>= 1
    return a.digest()


def _rounds(a: bytes, p: bytes, s: bytes, rounds: int) -> bytes:
    """The stretching loop (step 21)."""
    c = a
    for i in range(rounds):
        h = hashlib.sha512(p if i & 1 else c)
        if i % 3:
            h.update(s)
        if i % 7:
            h.update(p)
        h.update(c if i & 1 else p)
        c = h.digest()
    return c


def _encode(digest: bytes) -> str:
    out = []
    for x, y, z in _ORDER:
        w = (digest[x] << 16) | (digest[y] << 8) | digest[z]
        out += [_B64[(w >> (6 * k)) & 63] for k in range(4)]
    w = digest[63]
    out += [_B64[w & 63], _B64[w >> 6]]
    return "".join(out)


def sha512_crypt(password: str, salt: str | None = None, rounds: int = ROUNDS) -> str:
    """The `$6$<salt>$<hash>` of `password` (a random 16-character salt unless given)."""
    salt = (salt if salt is not None else _random_salt())[:16]
    rounds = max(1000, min(rounds, 999_999_999))  # glibc's clamp
    if "$" in salt or ":" in salt or "\n" in salt:
        raise ValueError("a salt holds no '$', ':' or newline")
    pw, sb = password.encode(), salt.encode()
    a = _initial(pw, sb)
    p = _repeat(hashlib.sha512(pw * len(pw)).digest(), len(pw))
    s = _repeat(hashlib.sha512(sb * (16 + a[0])).digest(), len(sb))
    digest = _rounds(a, p, s, rounds)
    head = "$6$" if rounds == ROUNDS else f"$6$rounds={rounds}$"
    return f"{head}{salt}${_encode(digest)}"


def _random_salt() -> str:
    return "".join(secrets.choice(_B64) for _ in range(16))


def verify(password: str, hashed: str) -> bool:
    """Whether `hashed` (a `$6$` hash) is the hash of `password`."""
    parts = hashed.split("$")
    if len(parts) not in (4, 5) or parts[1] != "6":
        return False
    rounds = ROUNDS
    if len(parts) == 5:
        if not parts[2].startswith("rounds="):
            return False
        rounds = int(parts[2][7:])
    return hmac.compare_digest(sha512_crypt(password, parts[-2], rounds), hashed)


def htpasswd_line(user: str, password: str, salt: str | None = None) -> str:
    """One nginx auth_basic_user_file line."""
    if ":" in user or "\n" in user:
        raise ValueError("an htpasswd user name holds no ':' or newline")
    return f"{user}:{sha512_crypt(password, salt)}\n"
