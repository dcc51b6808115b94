"""The Fargate task sizes AWS accepts: a fixed table of cpu units to memory MiB."""

from __future__ import annotations


def _steps(low: int, high: int, step: int) -> tuple[int, ...]:
    return tuple(range(low, high + 1, step))


# Linux tasks; https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html
FARGATE_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: _steps(1024, 4096, 1024),
    1024: _steps(2048, 8192, 1024),
    2048: _steps(4096, 16384, 1024),
    4096: _steps(8192, 30720, 1024),
    8192: _steps(16384, 61440, 4096),
    16384: _steps(32768, 122880, 8192),
}


def fargate_size_problem(cpu: int, memory_mib: int) -> str | None:
    """Return None for a valid Fargate cpu/memory pair, else what is allowed."""
    if cpu not in FARGATE_SIZES:
        return f"cpu must be one of {', '.join(map(str, FARGATE_SIZES))}"
    memories = FARGATE_SIZES[cpu]
    if memory_mib not in memories:
        if len(memories) <= 4:
            allowed = ", ".join(map(str, memories))
        else:
            allowed = f"{memories[0]} to {memories[-1]} in steps of {memories[1] - memories[0]}"
        return f"with cpu {cpu}, memory must be one of: {allowed} MiB"
    return None
