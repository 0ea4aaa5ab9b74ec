"""The policy file: one typed loader for everything a policy person may change (policy/policy.yaml by default,
or the file DOCKET_POLICY_FILE names).

The file is read once per path and parsed into its two halves: the penalty mapper's `Policy` (ladders, points,
expiry, health) and the queue's `QueuePolicy` (response-time goals, aging, rules-only priority, and the spike and
monitor sections, which their own dataclasses check with `policy.sections.from_mapping`). Everyone who needs the
policy (the service, the command line, training's replay and baselines) asks here, so all see the same rules.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from config.settings import Settings
from policy.penalty import Policy, parse_policy
from policy.queue import QueuePolicy, parse_queue_policy

DEFAULT_POLICY = Path(__file__).with_name("policy.yaml")


@dataclass(frozen=True)
class PolicyFile:
    path: Path
    penalty: Policy
    queue: QueuePolicy


def policy_path(path: Path | str | None = None) -> Path:
    """`path`, else DOCKET_POLICY_FILE, else the policy shipped with Docket."""
    return Path(path or Settings.from_env().policy_file or DEFAULT_POLICY)


@lru_cache(maxsize=8)
def _load(path: Path) -> PolicyFile:
    text = path.read_text(encoding="utf-8")
    return PolicyFile(path=path, penalty=parse_policy(text), queue=parse_queue_policy(text))


def load_policy_file(path: Path | str | None = None) -> PolicyFile:
    """Both halves of the policy file; raises PolicyError naming a broken rule."""
    return _load(policy_path(path))


def load_policy(path: Path | str | None = None) -> Policy:
    """The penalty mapper's half of the policy file."""
    return load_policy_file(path).penalty


def load_queue_policy(path: Path | str | None = None) -> QueuePolicy:
    """The queue's half of the policy file."""
    return load_policy_file(path).queue
