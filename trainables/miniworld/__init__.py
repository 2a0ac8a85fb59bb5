"""The mini-world: a seeded synthetic stand-in for deep-ignorance + WMDP + MMLU that runs on a CPU.

    from trainables.miniworld import PRESETS, build_world
    world = build_world(PRESETS["miniworld"])       # cached; world.base_model_dir, world.tasks_dir, ...
"""

from trainables.miniworld.build import (
    ALT_FORGET_TASK,
    ALT_RETAIN_TASK,
    FORGET_TASK,
    PRESETS,
    RETAIN_TASK,
    TASKS,
    MiniWorldConfig,
    World,
    build_world,
    world_config,
)

__all__ = ["ALT_FORGET_TASK", "ALT_RETAIN_TASK", "FORGET_TASK", "PRESETS", "RETAIN_TASK", "TASKS", "MiniWorldConfig",
           "World", "build_world", "world_config"]
