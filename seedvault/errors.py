"""One exception hierarchy for seedvault, split by who is at fault.

Every message names what was expected, what was found, and what the user can do.
Each class carries the exit code the CLI uses and the HTTP status a registry node answers
with, so a refusal means the same thing on the command line, over HTTP, and in Python; the
registry client rebuilds the exact class from the JSON `type` a node sends (`by_name`).
The CLI never prints a traceback for them.
"""

from __future__ import annotations


class Error(Exception):
    """Root of every error seedvault raises on purpose."""

    exit_code = 1
    http_status = 500

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
    http_status = 422


class SignatureError(VerificationError):
    """A signature does not verify, or no signature was made by a trusted key."""

    http_status = 403


class PolicyError(VerificationError):
    """Signatures verify but the local trust policy does not accept them."""

    http_status = 403


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


class MissingFilesError(IntegrityError):
    """The directory that should hold a release's files is gone (a vault snapshot deleted by
    hand, a bundle without files/): not found, rather than bytes that differ."""

    exit_code = 4
    http_status = 404


class UnauthorizedError(PolicyError):
    """An operation that needs a credential (admin token, upload token) came without the right one."""

    http_status = 401


class RemovedError(PolicyError):
    """A registry's admin removed this release; it is not accepted again until the admin lifts that."""

    http_status = 410


class YankedError(PolicyError):
    """The release was yanked by its publisher (the signed head says so, with a reason)."""
    http_status = 410


class RollbackError(VerificationError):
    """A manifest would replace one already seen for the same name@version, or move latest back."""

    http_status = 409


class SplitViewError(RollbackError):
    """A transparency log shows a history that does not extend the one seen before (a fork:
    one view for some clients, another for others), or a witness saw it do so."""


class OldSizeConflict(RollbackError):
    """A log asked a witness to cosign from a size that is not the one the witness cosigned
    last (tlog-witness answers 409 with that size, for the log to retry)."""

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message, hint="retry with old set to the witness's size")
        self.size = size


class ProofError(VerificationError):
    """A Merkle inclusion or consistency proof does not lead to the signed root."""


class ExpiredError(VerificationError):
    """The manifest's signed expiry time has passed."""


class ManifestError(VerificationError):
    """The manifest is malformed or breaks a validation rule (paths, names, digests)."""


class OversizeError(ManifestError):
    """Input from outside is larger than the bound seedvault reads (an envelope, a header, a body)."""

    http_status = 413


class UnsafePathError(ManifestError):
    """A path would escape its directory, or is otherwise unsafe to create."""


class UnsafeWeightsError(VerificationError):
    """A weights file is malformed (safetensors header) or can execute code on load (pickle)."""


class TransferError(Error):
    """Moving bytes failed: a peer, a server, a disk."""

    exit_code = 5
    http_status = 502


class BusyError(TransferError):
    """A registry node is at a bound it keeps (connections, uploads, body memory): retry later."""

    http_status = 503


class InsufficientStorageError(TransferError):
    """The disk (or the staging quota) cannot hold what was sent; nothing partial is kept."""

    http_status = 507


class DatabaseError(TransferError):
    """The registry's index database failed or cannot be reached (SQLite, PostgreSQL): retry later."""

    http_status = 503


class DatabaseConflictError(DatabaseError):
    """A row the index keeps unique exists already (another node took it first); the index
    turns it into the error that says why (e.g. RollbackError for a name@version)."""


class UsageError(Error):
    """The user asked for something inconsistent, or the configuration is wrong."""

    exit_code = 2
    http_status = 400


class NotFoundError(Error, LookupError):
    """A model, version, key or file that was asked for does not exist."""

    exit_code = 4
    http_status = 404


class SeedvaultWarning(UserWarning):
    """Something the user should know that does not stop the work: a stale head, a yanked
    release used under `yanked = "warn"`. The library warns; the CLI prints `warning: ...`."""


def _all_classes(root: type[Error]) -> dict[str, type[Error]]:
    found = {root.__name__: root}
    for sub in root.__subclasses__():
        found.update(_all_classes(sub))
    return found


def by_name(name: object) -> type[Error] | None:
    """The error class a registry's JSON `type` names, or None if seedvault has none by that name.

    Only classes of this hierarchy are ever returned: a hostile server cannot make a client
    raise anything else."""
    return _all_classes(Error).get(name) if isinstance(name, str) else None
