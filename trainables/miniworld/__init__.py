"""The mini-world: a seeded synthetic stand-in for deep-ignorance + WMDP + MMLU that runs on a CPU.

    from trainables.miniworld import PRESETS, build_world
    world = build_world(PRESETS["miniworld"])       # cached; world.base_model_dir, world.tasks_dir, ...
"""

from trainables.miniworld.build import FORGET_TASK, PRESETS, RETAIN_TASK, TASKS, MiniWorldConfig, World, build_world

__all__ = ["FORGET_TASK", "PRESETS", "RETAIN_TASK", "TASKS", "MiniWorldConfig", "World", "build_world"]
