"""Artifact layout: where each stage reads and writes on the artifacts volume.

Why fixed paths: the Jobs, the local runner and the report all find each other's outputs here, and a stage's
`_SUCCESS` marker (written last) is how a restarted runner knows the stage finished.
"""

from __future__ import annotations

import posixpath
from pathlib import PurePosixPath

CLUSTER_ROOT = "/artifacts"
CONFIG_MOUNT = "/etc/purpcode"
CONFIG_FILE = "config.json"
SUCCESS_MARKER = "_SUCCESS"

# API stage name -> directory under the artifacts root.
STAGE_DIRS: dict[str, str] = {
    "initialize": "model",
    "synthesis": "synthesis",
    "ruleLearning": "rule_learning",
    "rl": "rl",
    "evaluation": "evaluation",
    "report": "report",
}


class Layout:
    """Paths under one artifacts root (a POSIX path string: the cluster's /artifacts or a local work dir)."""

    def __init__(self, root: str = CLUSTER_ROOT) -> None:
        self.root = PurePosixPath(root)
        # Joined as strings: the operator builds these paths for every reconcile (pathlib's `/` is ~10x slower).
        self._root = str(self.root)
        self._paths: dict[tuple[str, ...], str] = {}

    def _path(self, *parts: str) -> str:
        path = self._paths.get(parts)  # the same few paths, asked for on every reconcile
        if path is None:
            path = posixpath.join(self._root, *parts) if self._root != "." else posixpath.join(*parts)
            self._paths[parts] = path
        return path

    def stage_dir(self, stage: str) -> str:
        return self._path(STAGE_DIRS[stage])

    def success_marker(self, stage: str) -> str:
        return self._path(STAGE_DIRS[stage], SUCCESS_MARKER)

    @property
    def base_model(self) -> str:
        """The base model, fetched or built once by the initializer."""
        return self._path("model", "base")

    @property
    def judge_model(self) -> str:
        """The judge model, when the initializer fetches it for a local or CPU judge."""
        return self._path("model", "judge")

    @property
    def data(self) -> str:
        return self.stage_dir("synthesis")

    @property
    def rule_learning_model(self) -> str:
        return self._path("rule_learning", "model")

    @property
    def easy_ids(self) -> str:
        return self._path("rule_learning", "easy_ids.json")

    @property
    def rl_model(self) -> str:
        return self._path("rl", "model")
