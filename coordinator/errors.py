"""Domain errors. Every message is written for a person: it ends up in the HTTP body.

    CommandpostError          base
    ├── Invalid               422  unknown incident type, bad status transition, idempotency key reused
    ├── Unauthorized          401  no token, a forged or expired token
    ├── Forbidden             403  the token's scope does not allow it
    ├── NotFound              404  incident / unit / assignment
    ├── Conflict              409  expected stream version changed, unit no longer available
    ├── RateLimited           429  a token sent more than its rate limit allows (``retry_after_s``)
    └── Unavailable           503  the event log cannot be reached

The installer that maps these to responses lives in ``app.py`` so that this module,
which the decision code imports, imports nothing.
"""


class CommandpostError(Exception):
    code = "error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Invalid(CommandpostError):
    code = "invalid"


class Unauthorized(CommandpostError):
    code = "unauthorized"


class Forbidden(CommandpostError):
    code = "forbidden"


class NotFound(CommandpostError):
    code = "not_found"


class Conflict(CommandpostError):
    code = "conflict"


class RateLimited(CommandpostError):
    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(CommandpostError):
    code = "unavailable"


STATUS: dict[type[CommandpostError], int] = {
    Invalid: 422,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    RateLimited: 429,
    Unavailable: 503,
}
