"""One exception hierarchy for seedvault, split by who is at fault.

Every message names what was expected, what was found, and what the user can do.
The CLI maps each branch to its own exit code and never prints a traceback for them.
"""

from __future__ import annotations


class Error(Exception):
    """Root of every error seedvault raises on purpose."""

    exit_code = 1

    def diagnostics(self) -> str:
        """Text for a person: the message, and a hint when one was given."""
        hint = getattr(self, "hint", None)
        return f"{self}\n  hint: {hint}" if hint else str(self)

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class VerificationError(Error):
    """The data is bad or not trusted: refuse it, load nothing, store nothing."""

    exit_code = 3


class SignatureError(VerificationError):
    """A signature does not verify, or no signature was made by a trusted key."""


class PolicyError(VerificationError):
    """Signatures verify but the local trust policy does not accept them."""


class IntegrityError(VerificationError):
    """Bytes on disk or in transit differ from what the signed manifest pins."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        expected: str | None = None,
        found: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.path = path
        self.expected = expected
        self.found = found


class RollbackError(VerificationError):
    """A manifest would replace one already seen for the same name@version, or move latest back."""


class ExpiredError(VerificationError):
    """The manifest's signed expiry time has passed."""


class ManifestError(VerificationError):
    """The manifest is malformed or breaks a validation rule (paths, names, digests)."""


class UnsafePathError(ManifestError):
    """A path would escape its directory, or is otherwise unsafe to create."""


class UnsafeWeightsError(VerificationError):
    """A weights file is malformed (safetensors header) or can execute code on load (pickle)."""


class TransferError(Error):
    """Moving bytes failed: a peer, a server, a disk."""

    exit_code = 5


class UsageError(Error):
    """The user asked for something inconsistent, or the configuration is wrong."""

    exit_code = 2


class NotFoundError(Error, LookupError):
    """A model, version, key or file that was asked for does not exist."""

    exit_code = 4
