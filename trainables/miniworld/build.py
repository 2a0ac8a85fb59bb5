"""Build the mini-world once, deterministically, into a cache directory keyed by its config hash.

    python -m trainables.miniworld [--small]        # build (if needed) and print the score table

Layout of a built world (``<cache>/miniworld/<name>-<hash>/``)::

    world.json                   the config and every fact
    corpus/{forget,retain}.txt   unlearning text (all paraphrases of all facts, one per line)
    data/cais/wmdp/...           held-out questions in the Hub layout (configs wmdp-bio, wmdp-bio-cloze)
    data/cais/mmlu/...           (configs materials_science, materials_science_cloze; test + dev splits)
    tasks/*.yaml                 lm-eval task files (include the shipped templates, absolute data paths)
    tokenizer/, early/, base/    HF tokenizer; stage-1 and stage-2 models (safetensors, tokenizer inside)
    MANIFEST.json                sha256 of every file above; written last

A directory without a matching manifest is never used: it is rebuilt in a temporary directory that is
renamed into place, under a file lock, so concurrent builders and interrupted builds are safe.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from trainables.miniworld import release
from trainables.miniworld import world as W

BUILD_VERSION = 3  # bump when the build procedure changes in a way the config does not capture
WEIGHTS = ("released", "pretrain")
TEMPLATES_DIR = Path(__file__).parent / "tasks"
TASKS = {  # task name -> (template, Hub repo dir, config name, description)
    "miniworld_bio": ("_letter_template_yaml", "wmdp", "wmdp-bio", W.DESCRIPTIONS[W.FORGET]),
    "miniworld_bio_cloze": ("_cloze_template_yaml", "wmdp", "wmdp-bio-cloze", ""),
    "miniworld_stem": ("_letter_template_yaml", "mmlu", "materials_science", W.DESCRIPTIONS[W.RETAIN]),
    "miniworld_stem_cloze": ("_cloze_template_yaml", "mmlu", "materials_science_cloze", ""),
}
FORGET_TASK, RETAIN_TASK = "miniworld_bio_cloze", "miniworld_stem_cloze"  # primary scores (README: why)
ALT_FORGET_TASK, ALT_RETAIN_TASK = "miniworld_bio", "miniworld_stem"     # the exact WMDP / MMLU letter prompt


@dataclass(frozen=True)
class MiniWorldConfig:
    """Everything that determines a world; its hash names the cache directory."""

    name: str = "miniworld"
    seed: int = 0                  # the world seed: facts, held-out split, initial weights, batches
    n_entities: int = 112          # per domain, 4 facts each
    heldout_share: float = 0.75    # -> 336 held-out questions per domain; the rest are practice facts
    vocab_size: int = 2048         # large enough that (nearly) every entity name is one token
    hidden_size: int = 128         # 4 layers x 128 hidden x 320 MLP, tied embeddings: ~0.9M parameters
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 320
    lr: float = 6e-3               # peak; warmup, then cosine to 0 in each stage
    stage1_steps: int = 1200       # retain domain only -> early checkpoint (600 left seed 1 at 85 % retain)
    stage2_steps: int = 2200       # both domains -> base model (1100 left seed 0 at 84 % forget cloze)
    batch: int = 64                # fact sentences per step
    qa_batch: int = 32             # QA documents per step: they speed up memorisation of every fact
                                   # several-fold, held-out ones included (measured: 97 % vs 69 % cloze)
    mc_batch: int = 32             # fresh letter-format multiple-choice documents per step
    stage2_forget_share: float = 0.75  # stage 2 batches: new forget facts, plus retain replay
    weights: str = "released"      # released: the shipped checkpoints (same on every machine, release.py);
                                   # pretrain: train them here (chaotic: differ across CPU kernels/threads)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", "float") and value <= 0 and f.name != "seed":
                raise ValueError(f"miniworld config: {f.name} must be > 0 (got {value})")
        if self.weights not in WEIGHTS:
            raise ValueError(f"miniworld config: weights must be one of {WEIGHTS} (got {self.weights!r})")
        if self.n_entities < 4:
            raise ValueError(f"miniworld config: n_entities must be >= 4 (got {self.n_entities})")
        for name in ("heldout_share", "stage2_forget_share"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"miniworld config: {name} must be in (0, 1) (got {getattr(self, name)})")

    def key(self) -> str:
        blob = json.dumps({"build_version": BUILD_VERSION, **asdict(self)}, sort_keys=True)
        return f"{self.name}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


PRESETS = {
    "miniworld": MiniWorldConfig(),
    "miniworld-small": MiniWorldConfig(name="miniworld-small", n_entities=16, vocab_size=1024, stage1_steps=150,
                                       stage2_steps=250),
}


def world_config(name: str = "miniworld", seed: int = 0, weights: str = "released") -> MiniWorldConfig:
    """A named size (``miniworld`` | ``miniworld-small``), world seed and weights source, checked up front:
    unknown names list the valid ones, a seed without released weights says how to train it here."""
    if name not in PRESETS:
        raise ValueError(f"unknown mini-world {name!r}; choose one of {sorted(PRESETS)}")
    if seed < 0:
        raise ValueError(f"world seed must be >= 0 (got {seed})")
    config = replace(PRESETS[name], seed=seed, weights=weights)
    if weights == "released":
        release.check_released(config)
    return config


@dataclass(frozen=True)
class World:
    """Paths into one built world."""

    root: Path
    config: MiniWorldConfig

    tokenizer_dir = property(lambda self: self.root / "tokenizer")
    early_model_dir = property(lambda self: self.root / "early")
    base_model_dir = property(lambda self: self.root / "base")
    forget_corpus = property(lambda self: self.root / "corpus" / "forget.txt")
    retain_corpus = property(lambda self: self.root / "corpus" / "retain.txt")
    data_root = property(lambda self: self.root / "data")
    tasks_dir = property(lambda self: self.root / "tasks")


def cache_root() -> Path:
    """``$UNLEARN_TUNER_CACHE`` or ``~/.cache/unlearn-tuner``."""
    return Path(os.environ.get("UNLEARN_TUNER_CACHE", Path.home() / ".cache" / "unlearn-tuner"))


def build_world(config: MiniWorldConfig = PRESETS["miniworld"], *, root: Path | None = None,
                progress: Callable[[str, int, int], None] | None = None) -> World:
    """Return the cached world for ``config``, building it first if missing or corrupt."""
    base = (root or cache_root()) / "miniworld"
    base.mkdir(parents=True, exist_ok=True)
    final = base / config.key()
    with open(base / f".{config.key()}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _manifest_ok(final):
            tmp = Path(tempfile.mkdtemp(prefix=f".{config.key()}-", dir=base))
            try:
                _build_into(tmp, config, progress or (lambda stage, i, n: None))
                shutil.rmtree(final, ignore_errors=True)
                os.replace(tmp, final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        _write_task_files(final)
    return World(final, config)


def _manifest_ok(root: Path) -> bool:
    try:
        manifest = json.loads((root / "MANIFEST.json").read_text())
        return all(release.sha256(root / rel) == digest for rel, digest in manifest["files"].items())
    except (OSError, ValueError, KeyError):
        return False


def _build_into(root: Path, config: MiniWorldConfig, progress: Callable[[str, int, int], None]) -> None:
    from trainables.miniworld import pretrain as P

    facts = W.make_facts(config.seed, config.n_entities, config.heldout_share)
    _write_json(root / "world.json", {"config": asdict(config), "facts": [asdict(f) for f in facts]})
    domains = (W.FORGET, W.RETAIN)
    texts = {domain: W.corpus(facts, domain) for domain in domains}
    (root / "corpus").mkdir()
    (root / "corpus" / "forget.txt").write_text("\n".join(texts[W.FORGET]) + "\n")
    (root / "corpus" / "retain.txt").write_text("\n".join(texts[W.RETAIN]) + "\n")
    _write_eval_data(root, facts, config.seed)

    practice = {d: [f for f in facts if f.domain == d and not f.heldout] for d in domains}
    tokenizer = _train_tokenizer(facts, texts, practice, config)
    tokenizer.save_pretrained(root / "tokenizer")
    model = P.new_model(tokenizer, config.hidden_size, config.num_layers, config.num_heads,
                        config.intermediate_size, config.seed)
    if config.weights == "released":
        for out in release.STAGES:  # config + tokenizer files, then the released weights over the fresh ones
            with _no_progress_bars():
                model.save_pretrained(root / out, safe_serialization=True)
            tokenizer.save_pretrained(root / out)
        release.install(config, root, root / "tokenizer" / "tokenizer.json")
    else:
        _pretrain(model, tokenizer, root, config, progress, facts, texts, practice)
    files = sorted(p for p in root.rglob("*") if p.is_file())  # tasks/ is written after the move
    _write_json(root / "MANIFEST.json", {"files": {str(p.relative_to(root)): release.sha256(p) for p in files}})


def _pretrain(model, tokenizer, root: Path, config: MiniWorldConfig, progress: Callable[[str, int, int], None],
              facts: list[W.Fact], texts: dict[str, list[str]], practice: dict[str, list[W.Fact]]) -> None:
    """Stage 1 (retain only) -> ``early/``; stage 2 (both domains) -> ``base/``."""
    import torch

    from trainables.miniworld import pretrain as P

    fact_pool = {d: P.encode_pairs(tokenizer, [("", t) for t in texts[d]]) for d in texts}
    qa_pool = {d: P.encode_pairs(tokenizer, W.qa_documents(facts, d)) for d in texts}

    stages = (("stage 1 (retain only)", {W.RETAIN: 1.0}, config.stage1_steps, "early"),
              ("stage 2 (both domains)", {W.FORGET: config.stage2_forget_share,
                                          W.RETAIN: 1 - config.stage2_forget_share}, config.stage2_steps, "base"))
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 2))  # a ~1M-parameter model gains nothing from more threads
    for stage, share, steps, out in stages:
        draws = _mixture(share, fact_pool, qa_pool, practice, tokenizer, config)
        P.pretrain(model, draws, steps, config.lr, config.seed, tokenizer.pad_token_id,
                   on_step=lambda i, loss, s=stage, n=steps: progress(s, i + 1, n))
        with _no_progress_bars():  # "Writing model shards" for the one shard of a ~1M-parameter model
            model.save_pretrained(root / out, safe_serialization=True)
        tokenizer.save_pretrained(root / out)
    torch.set_num_threads(threads)


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _mixture(share: dict[str, float], fact_pool: dict, qa_pool: dict, practice: dict[str, list[W.Fact]],
             tokenizer, config: MiniWorldConfig) -> dict:
    """One stage's draws: fact sentences, QA documents and fresh MC documents, each split over domains by
    ``share`` (domain -> fraction of the kind's batch)."""
    from trainables.miniworld import pretrain as P

    def split(total: int, make: Callable[[str, int], P.Draw]) -> P.Draw:
        return P.concat_draws([make(d, round(total * s)) for d, s in share.items()])

    def mc(domain: str, n: int) -> P.Draw:
        return P.fresh_draw(tokenizer, lambda rng: W.mc_document(rng.choice(practice[domain]), rng), n)

    return {"facts": split(config.batch, lambda d, n: P.pool_draw(fact_pool[d], n)),
            "qa": split(config.qa_batch, lambda d, n: P.pool_draw(qa_pool[d], n)),
            "mc": split(config.mc_batch, mc)}


def _train_tokenizer(facts: list[W.Fact], texts: dict[str, list[str]], practice: dict[str, list[W.Fact]],
                     config: MiniWorldConfig):
    """BPE over the corpus, the QA documents and a sample of MC documents; " A".." D" must be single tokens."""
    from trainables.miniworld import pretrain as P

    rng = random.Random(config.seed)
    qa = [c + a for d in texts for c, a in W.qa_documents(facts, d)]
    mc = ["".join(W.mc_document(f, rng)) for d in texts for f in practice[d] for _ in range(2)]
    tokenizer = P.train_tokenizer(sorted(texts[W.FORGET] + texts[W.RETAIN] + qa + mc), config.vocab_size)
    split = [letter for letter in W.LETTERS if len(tokenizer(f" {letter}", add_special_tokens=False)["input_ids"]) != 1]
    if split:
        raise ValueError(f"miniworld config: the tokenizer splits {split} into several tokens; "
                         f"raise vocab_size (got {config.vocab_size})")
    return tokenizer


def _write_eval_data(root: Path, facts: list[W.Fact], seed: int) -> None:
    """Hub layout: ``cais/wmdp/<config>/test.jsonl``, ``cais/mmlu/<config>/{test,dev}.jsonl`` + READMEs."""
    for domain, repo, config in ((W.FORGET, "wmdp", "wmdp-bio"), (W.RETAIN, "mmlu", "materials_science")):
        items = W.eval_items(facts, domain, seed)
        readme = ["---", "configs:"]
        for suffix, kind in (("", "question"), ("-cloze" if repo == "wmdp" else "_cloze", "cloze")):
            splits = {"test": items[kind]} if repo == "wmdp" else {"test": items[kind], "dev": items[f"dev_{kind}"]}
            readme += [f"- config_name: {config}{suffix}", "  data_files:"]
            for split, rows in splits.items():
                if repo == "mmlu":
                    rows = [{"question": r["question"], "subject": config, "choices": r["choices"],
                             "answer": r["answer"]} for r in rows]
                path = root / "data" / "cais" / repo / f"{config}{suffix}" / f"{split}.jsonl"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("".join(json.dumps(r) + "\n" for r in rows))
                readme += [f"  - split: {split}", f"    path: {config}{suffix}/{split}.jsonl"]
        (root / "data" / "cais" / repo / "README.md").write_text("\n".join(readme + ["---", ""]))


def _write_task_files(root: Path) -> None:
    """One small task file per task; absolute paths, so written where the world finally lives.

    Not part of the manifest: rewritten (atomically) on every load, e.g. after the cache was moved.
    """
    (root / "tasks").mkdir(exist_ok=True)
    for task, (template, repo, config, description) in TASKS.items():
        lines = [f"include: {TEMPLATES_DIR / template}", f"task: {task}",
                 f"dataset_path: {root / 'data' / 'cais' / repo}", f"dataset_name: {config}",
                 # datasets caches local data by directory + config name only: keep each world's apart
                 "dataset_kwargs:", f"  cache_dir: {root / 'data' / '.hf_datasets_cache'}"]
        if repo == "mmlu":
            lines.append("fewshot_split: dev")
        if description:
            lines.append(f"description: {json.dumps(description)}")
        tmp = root / "tasks" / f".{task}.yaml.{os.getpid()}"
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, root / "tasks" / f"{task}.yaml")


def _write_json(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")
