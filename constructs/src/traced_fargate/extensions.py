"""The seam through which sidecars and other task-level concerns plug into a traced task.

A :class:`TaskExtension` is handed to :class:`~traced_fargate.TracedTaskDefinition`
(``tracing=`` for the tracing sidecar, ``extensions=[...]`` for the rest). The task
definition calls its hooks in this order, once:

1. :meth:`TaskExtension.problems` and :meth:`TaskExtension.app_environment`: prop
   problems and the app's environment, checked with the task's own props before
   anything is added, so that every problem is reported at once.
2. :meth:`TaskExtension.add_to_task`: add containers, volumes and grants.
3. :meth:`TaskExtension.app_logging`: the app container's log driver, before the app
   container is added (a log router replaces it here, as cdk-ecs-service-extensions'
   ``ContainerMutatingHook`` does).
4. :meth:`TaskExtension.app_container_added`: container dependencies on the app.

The cpu and memory an extension reserves (:attr:`TaskExtension.cpu`,
:attr:`TaskExtension.memory_reservation_mib`) count toward the task size; the app gets
what the extensions leave unless its reservations are given.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import TYPE_CHECKING

from aws_cdk import aws_ecs as ecs

if TYPE_CHECKING:
    from traced_fargate.traced_task_definition import TracedTaskDefinition


class TaskExtension(abc.ABC):
    """One concern added to a traced task: containers, grants, app environment, app logging.

    Subclass it for your own sidecar; implement :meth:`add_to_task` and override the
    other hooks you need. An extension object describes what to add and holds no
    constructs, so it may be reused for several task definitions.
    """

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """A short name, unique within a task (e.g. ``"tracing"``); the container name of a
        one-container sidecar."""

    @property
    def cpu(self) -> int:
        """Cpu units its containers reserve. Default: 0."""
        return 0

    @property
    def memory_reservation_mib(self) -> int:
        """Memory its containers reserve. Default: 0."""
        return 0

    def problems(self) -> list[str]:
        """Problems of the extension's props, one line each naming the prop. Default: none."""
        return []

    @abc.abstractmethod
    def add_to_task(self, task: TracedTaskDefinition) -> None:
        """Add this extension's containers, volumes and grants to ``task``.

        The app container does not exist yet; ``task.task_role`` and
        ``task.task_definition.obtain_execution_role()`` do. Use
        :meth:`TracedTaskDefinition.container_logging` for a container's logs so that
        they share the task's encryption key, retention and buffer.
        """

    def app_environment(self) -> Mapping[str, str]:
        """Environment variables the app needs to use this extension. Default: none.

        A key that the user's ``app_environment`` also sets is a prop error, never a
        silent override.
        """
        return {}

    def app_logging(self, task: TracedTaskDefinition, logging: ecs.LogDriver) -> ecs.LogDriver:
        """The app container's log driver, given the one it would have. Default: unchanged."""
        return logging

    def app_container_added(
        self, task: TracedTaskDefinition, app_container: ecs.ContainerDefinition
    ) -> None:
        """Called once the app container exists, e.g. to order container start-up."""
        return None
