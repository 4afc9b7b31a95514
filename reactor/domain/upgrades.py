"""Model versions: a manifest per document type, and the pure upgrade of a
scope's state from one version to a later one.

A model has one reducer and one state schema per scope, the latest
version's; they must accept the states of every supported version. An
upgrade step turns a state at version n into its meaning at version n + 1
(a field filled in, a value renamed, ...). A type without a manifest is at
version 1 and has nothing to upgrade to.

Versions in the log:
- CREATE_DOCUMENT records the version the document starts at (the latest,
  filled in when the batch is planned) as `input.model_version`.
- UPGRADE_DOCUMENT {to_version} in the document scope raises it. In the same
  job it appends, in each model scope (global, local), an operation
  UPGRADE_DOCUMENT {from_version, to_version} whose hash is the hash of the
  upgraded state. Replaying a scope's lane applies the steps when it meets
  that operation, so each lane replays on its own and every operation's hash
  stays the hash of the state after it. Operations are never rewritten.
- An action may say which version it was written for in
  `context.model_version`; one written for a newer version than the
  document's is refused (`ActionVersionTooNew`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

UPGRADE_ACTION = "UPGRADE_DOCUMENT"
# Where an action names the model version it was written for.
VERSION_CONTEXT_KEY = "model_version"
# The version of a document whose type has no manifest, or whose creation
# recorded none.
UNVERSIONED = 1

StateStep = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class UpgradeStep:
    """From version `to_version - 1` to `to_version`: a pure function per
    scope; a scope without one keeps its state."""

    to_version: int
    scopes: Mapping[str, StateStep] = field(default_factory=dict)


@dataclass(frozen=True)
class UpgradeManifest:
    document_type: str
    latest_version: int
    supported_versions: frozenset[int]
    steps: Mapping[int, UpgradeStep]  # by to_version

    @classmethod
    def of(
        cls,
        document_type: str,
        latest_version: int,
        steps: list[UpgradeStep],
        supported_versions: set[int] | None = None,
    ) -> UpgradeManifest:
        """`supported_versions` defaults to every version up to the latest."""
        if latest_version < UNVERSIONED:
            raise ValueError(f"{document_type}: latest version must be >= 1")
        by_version: dict[int, UpgradeStep] = {}
        for step in steps:
            if step.to_version in by_version:
                raise ValueError(f"{document_type}: two steps to version {step.to_version}")
            if not 1 < step.to_version <= latest_version:
                raise ValueError(
                    f"{document_type}: step to version {step.to_version} outside 2..{latest_version}"
                )
            by_version[step.to_version] = step
        supported = frozenset(supported_versions or range(1, latest_version + 1))
        if latest_version not in supported or any(
            not UNVERSIONED <= v <= latest_version for v in supported
        ):
            raise ValueError(f"{document_type}: supported versions must lie in 1..{latest_version}")
        return cls(document_type, latest_version, supported, by_version)


class UpgradeError(Exception):
    """An upgrade the manifest cannot make; `error_type` names it."""

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type


def latest_version(manifest: UpgradeManifest | None) -> int:
    return UNVERSIONED if manifest is None else manifest.latest_version


def check_upgrade(
    manifest: UpgradeManifest | None, document_type: str, current: int, to: int
) -> None:
    """Raises UpgradeError unless `current -> to` is an upgrade the manifest
    makes: to a higher, supported version, with a step for every version."""
    if to <= current:
        raise UpgradeError(
            "UpgradeNotHigher", f"{document_type}: cannot upgrade from version {current} to {to}"
        )
    if manifest is None or to not in manifest.supported_versions:
        supported = sorted(manifest.supported_versions) if manifest else [UNVERSIONED]
        raise UpgradeError(
            "UnsupportedVersion",
            f"{document_type}: version {to} is not supported (supported: {supported})",
        )
    missing = [v for v in range(current + 1, to + 1) if v not in manifest.steps]
    if missing:
        raise UpgradeError(
            "MissingUpgradeStep",
            f"{document_type}: no upgrade step to version {missing[0]}",
        )


def upgrade_state(
    manifest: UpgradeManifest | None,
    document_type: str,
    scope: str,
    state: dict[str, Any],
    current: int,
    to: int,
) -> dict[str, Any]:
    """The scope's state stepped from version `current` to `to`. Raises
    UpgradeError (a step that raises is `UpgradeStepFailed`)."""
    check_upgrade(manifest, document_type, current, to)
    assert manifest is not None
    for version in range(current + 1, to + 1):
        step = manifest.steps[version].scopes.get(scope)
        if step is None:
            continue
        try:
            state = step(state)
        except Exception as exc:
            raise UpgradeError(
                "UpgradeStepFailed",
                f"{document_type}: the step to version {version} failed in scope {scope!r}: "
                f"{type(exc).__name__}: {exc}",
            ) from exc
    return state


def action_version(context: dict[str, Any] | None) -> int | None:
    """The model version an action says it was written for, if any."""
    if not context or VERSION_CONTEXT_KEY not in context:
        return None
    return int(context[VERSION_CONTEXT_KEY])
